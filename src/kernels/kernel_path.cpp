#include "qkv/kernels/kernel_path.h"

#include <stdexcept>

#include "qkv/runtime/torch_compat.h"

namespace qkv {

KernelPath kernel_path_from_string(const std::string& name, bool dropout) {
  if (name == "reference") return KernelPath::kReference;
  if (name == "fused") return KernelPath::kFused;
  if (name == "auto") return faster_cpu_kernel_path(dropout);
  throw std::invalid_argument("kernels: expected reference, fused or auto, got '" + name + "'");
}

KernelPath faster_cpu_kernel_path(bool dropout) {
  // The LibTorch with its own fused attention (SDPA) and AdamW is the one whose reference wins.
  return sdpa_available() && !dropout ? KernelPath::kReference : KernelPath::kFused;
}

std::string to_string(KernelPath path) {
  return path == KernelPath::kFused ? "fused" : "reference";
}

}  // namespace qkv
