#include "qkv/runtime/autocast_scope.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

// The autocast API was renamed in LibTorch 2.4.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define QKV_AUTOCAST_BY_DEVICE 1
#endif

namespace qkv {

namespace {

void set_bf16_autocast(c10::DeviceType device, bool on) {
#ifdef QKV_AUTOCAST_BY_DEVICE
  if (on) at::autocast::set_autocast_dtype(device, at::kBFloat16);
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == c10::DeviceType::CUDA) {
    if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(on);
  } else {
    if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(on);
  }
#endif
}

}  // namespace

bool autocast_enabled(c10::DeviceType device) {
#ifdef QKV_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
#endif
}

AutocastScope::AutocastScope(bool enabled, c10::DeviceType device)
    : enabled_(enabled), device_(device) {
  if (enabled_) set_bf16_autocast(device_, true);
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  set_bf16_autocast(device_, false);
  at::autocast::clear_cache();  // casts of the weights are stale once they are updated
}

}  // namespace qkv
