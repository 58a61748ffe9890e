#include "qkv/runtime/autocast_scope.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

// The autocast API was renamed in LibTorch 2.4.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define QKV_AUTOCAST_BY_DEVICE 1
#endif

namespace qkv {

AutocastScope::AutocastScope(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
#ifdef QKV_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCPU, true);
#else
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
#endif
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
#ifdef QKV_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(at::kCPU, false);
#else
  at::autocast::set_cpu_enabled(false);
#endif
  at::autocast::clear_cache();  // casts of the weights are stale once they are updated
}

}  // namespace qkv
