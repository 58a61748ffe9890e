#include "qkv/kernels/kernel_path.h"

#include <stdexcept>

namespace qkv {

KernelPath kernel_path_from_string(const std::string& name) {
  if (name == "reference") return KernelPath::kReference;
  if (name == "fused") return KernelPath::kFused;
  throw std::invalid_argument("kernels: expected reference or fused, got '" + name + "'");
}

std::string to_string(KernelPath path) {
  return path == KernelPath::kFused ? "fused" : "reference";
}

}  // namespace qkv
