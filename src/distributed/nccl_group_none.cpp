// Built without a CUDA LibTorch or NCCL: data-parallel training on GPUs is refused.
#include "c10d_process_group.h"

namespace qkv {

bool nccl_available() {
  return false;
}

namespace detail {

std::shared_ptr<ProcessGroup> make_nccl_group(const c10::intrusive_ptr<c10d::Store>&,
                                              const LaunchEnvironment&, std::chrono::milliseconds) {
  throw std::invalid_argument("this qkv was built without NCCL (a CUDA LibTorch is needed)");
}

}  // namespace detail
}  // namespace qkv
