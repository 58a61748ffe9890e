#include "qkv/runtime/cuda_device.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>

namespace qkv {

namespace {
constexpr auto kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
}

bool built_with_cuda() {
  return true;
}

std::string cuda_device_name() {
  if (!torch::cuda::is_available()) return "";
  return at::cuda::getCurrentDeviceProperties()->name;
}

int64_t cuda_peak_allocated_bytes() {
  if (!torch::cuda::is_available()) return 0;
  const auto device = c10::cuda::current_device();
  return c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[kAggregate].peak;
}

void reset_cuda_peak_memory() {
  if (torch::cuda::is_available())
    c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}

}  // namespace qkv
