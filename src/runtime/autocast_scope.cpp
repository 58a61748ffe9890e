#include "qkv/runtime/autocast_scope.h"

#include <ATen/autocast_mode.h>

#include "qkv/runtime/torch_compat.h"

namespace qkv {

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
