#pragma once

#include <c10/core/DeviceType.h>

#include "qkv/runtime/torch_compat.h"

namespace qkv {

// While alive, matrix products on `device` run in bf16 (LibTorch's autocast: oneDNN kernels on
// the CPU, cuBLAS and the fused attention kernels on a GPU) with fp32 master weights, gradients
// and optimizer state. A no-op when not enabled.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled, c10::DeviceType device = c10::DeviceType::CPU);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
};

// autocast_enabled(device), whether autocast is on (in an AutocastScope or set by a caller):
// products then return bf16, which qkv's fp32 kernels do not take.

}  // namespace qkv
