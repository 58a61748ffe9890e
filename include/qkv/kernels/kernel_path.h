#pragma once

#include <string>

namespace qkv {

// Which code computes a layer. kReference: the plain LibTorch ops, readable, used on CUDA, for
// inspection and as the oracle. kFused: qkv's own CPU kernels with hand-written backward
// (src/kernels/), where the input is float32 on the CPU; elsewhere the reference runs.
enum class KernelPath { kReference, kFused };

KernelPath kernel_path_from_string(const std::string& name);  // "reference" or "fused"
std::string to_string(KernelPath path);

}  // namespace qkv
