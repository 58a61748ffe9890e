// Built without the Gloo headers: data-parallel training on the CPU is refused.
#include "c10d_process_group.h"

namespace qkv {

bool gloo_available() {
  return false;
}

namespace detail {

std::shared_ptr<ProcessGroup> make_gloo_group(const c10::intrusive_ptr<c10d::Store>&,
                                              const LaunchEnvironment&, std::chrono::milliseconds) {
  throw std::invalid_argument("this qkv was built without Gloo (install libgloo-dev, rebuild)");
}

}  // namespace detail
}  // namespace qkv
