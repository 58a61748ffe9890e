#include "qkv/distributed/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <csignal>
#include <cstdlib>

#include "c10d_process_group.h"

namespace qkv {

namespace detail {

std::string collective_error_line(const std::exception& e) {
  std::string what = e.what();
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
  return what.substr(0, what.find('\n'));
}

}  // namespace detail

namespace {

// c10d logs each failed bind or connect attempt on its own; the failure reaches the user once, as
// the DistributedError line.
class QuietC10dLogs {
 public:
#ifdef C10_USE_GLOG
  QuietC10dLogs() : saved_(FLAGS_minloglevel) {
    FLAGS_minloglevel = 3;
  }
  ~QuietC10dLogs() {
    FLAGS_minloglevel = saved_;
  }
#else
  QuietC10dLogs() : saved_(FLAGS_caffe2_log_level) {
    FLAGS_caffe2_log_level = 3;
  }
  ~QuietC10dLogs() {
    FLAGS_caffe2_log_level = saved_;
  }
#endif

 private:
  int saved_;
};

// Gloo writes to its sockets with writev, which raises SIGPIPE once a peer has died: by default
// that ends this rank silently, before the collective can fail with a line naming the rank (seen
// in about 1 of 12 killed-rank runs under load). Ignored, the write fails with EPIPE and Gloo
// throws. A handler the program installed itself is left alone. Python ignores SIGPIPE at start,
// which is why PyTorch's own workers never see this.
void ignore_sigpipe_unless_handled() {
  struct sigaction now {};
  if (sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_DFL)
    std::signal(SIGPIPE, SIG_IGN);
}

// torchrun's agent already serves a store at MASTER_ADDR:MASTER_PORT and says so in
// TORCHELASTIC_USE_AGENT_STORE: then every rank is its client, under the key prefix PyTorch's own
// workers use. Otherwise rank 0 listens and the others connect, retrying until the timeout.
c10::intrusive_ptr<c10d::Store> open_store(const LaunchEnvironment& env,
                                           std::chrono::milliseconds timeout) {
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool agent_store = agent && std::string(agent) == "True";
  c10d::TCPStoreOptions options;
  options.port = env.master_port;
  options.isServer = env.rank == 0 && !agent_store;
  options.numWorkers = env.world_size;
  options.waitWorkers = !agent_store;
  options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  if (!agent_store) return store;
  const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return c10::make_intrusive<c10d::PrefixStore>(
      std::string("/worker/attempt_") + (attempt ? attempt : "0"), store);
}

c10::intrusive_ptr<c10d::Store> rendezvous(const LaunchEnvironment& env,
                                           std::chrono::milliseconds timeout) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    return open_store(env, timeout);
  } catch (const std::exception& e) {
    const std::string seconds = std::to_string(timeout.count() / 1000);
    throw DistributedError(
        env.rank == 0 ? "rank 0 cannot listen on MASTER_ADDR:MASTER_PORT " + where +
                            " (port in use, or not this machine's address?) or the other " +
                            std::to_string(env.world_size - 1) + " rank(s) did not join within " +
                            seconds + " s: " + detail::collective_error_line(e)
                      : "rank " + std::to_string(env.rank) +
                            " cannot reach rank 0 at MASTER_ADDR:MASTER_PORT " + where +
                            " within " + seconds + " s: " + detail::collective_error_line(e));
  }
}

}  // namespace

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const LaunchEnvironment& env,
                                                    const ProcessGroupOptions& options) {
  std::string backend = options.backend;
  if (backend == "auto") backend = options.device == torch::kCUDA ? "nccl" : "gloo";
  if (backend != "gloo" && backend != "nccl")
    throw std::invalid_argument("runtime.backend: expected auto, gloo or nccl, got " + backend);
  if (backend == "nccl" && options.device != torch::kCUDA)
    throw std::invalid_argument("runtime.backend nccl reduces CUDA tensors only; use gloo on " +
                                torch::Device(options.device).str());
  if (backend == "gloo" && !gloo_available())
    throw std::invalid_argument(
        "data-parallel training on the CPU needs Gloo, and this qkv was built without its headers "
        "(install libgloo-dev and rebuild: scripts/setup.sh does both)");
  if (backend == "nccl" && !nccl_available())
    throw std::invalid_argument(
        "data-parallel training with NCCL needs a CUDA LibTorch and NCCL's headers at build time");
  QuietC10dLogs quiet;
  ignore_sigpipe_unless_handled();
  auto store = rendezvous(env, options.timeout);
  return backend == "nccl" ? detail::make_nccl_group(store, env, options.timeout)
                           : detail::make_gloo_group(store, env, options.timeout);
}

}  // namespace qkv
