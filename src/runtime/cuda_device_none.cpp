#include "qkv/runtime/cuda_device.h"

#include <stdexcept>

// The build for a LibTorch without CUDA (Debian's): there is no device to ask.
namespace qkv {

bool built_with_cuda() {
  return false;
}

std::string cuda_device_name() {
  return "";
}

int64_t cuda_peak_allocated_bytes() {
  return 0;
}

void reset_cuda_peak_memory() {}

void profile_to_trace(const std::string&, const std::function<void()>&) {
  throw std::runtime_error("profiling needs qkv built against a CUDA LibTorch 2.x");
}

}  // namespace qkv
