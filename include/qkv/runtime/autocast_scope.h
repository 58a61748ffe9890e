#pragma once

namespace qkv {

// While alive, matrix products on the CPU run in bf16 (LibTorch's CPU autocast, oneDNN kernels)
// with fp32 master weights, gradients and optimizer state. A no-op when not enabled.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
};

}  // namespace qkv
