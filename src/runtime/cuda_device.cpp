#include "qkv/runtime/cuda_device.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/autograd/profiler_kineto.h>
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

void profile_to_trace(const std::string& path, const std::function<void()>& work) {
  namespace profiler = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const profiler::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<ActivityType> activities{ActivityType::CPU, ActivityType::CUDA};
  profiler::prepareProfiler(config, activities);
  profiler::enableProfiler(config, activities);
  work();
  if (torch::cuda::is_available()) torch::cuda::synchronize();
  profiler::disableProfiler()->save(path);
}

}  // namespace qkv
