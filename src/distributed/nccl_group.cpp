// ProcessGroupNCCL: compiled only with a CUDA LibTorch and NCCL's header (USE_C10D_NCCL is set).
// c10d declares the backend only under this macro; CMake compiles this file only when it can.
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "c10d_process_group.h"

namespace qkv {

bool nccl_available() {
  return true;
}

namespace detail {

std::shared_ptr<ProcessGroup> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env,
                                              std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = run_collective(env.rank, "joining the NCCL group", [&] {
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
  });
  return std::make_shared<C10dProcessGroup<c10d::ProcessGroupNCCL>>(store, group, env, "nccl");
}

}  // namespace detail
}  // namespace qkv
