#pragma once

#include <string>

namespace qkv {

// Which code computes a layer. kReference: the plain LibTorch ops, readable, used on CUDA, for
// inspection and as the oracle. kFused: qkv's own CPU kernels with hand-written backward
// (src/kernels/), where the input is float32 on the CPU; elsewhere the reference runs.
enum class KernelPath { kReference, kFused };

// "reference", "fused", or "auto": the faster path on the CPU for the LibTorch qkv is built
// with and a model that does or does not drop out (faster_cpu_kernel_path).
KernelPath kernel_path_from_string(const std::string& name, bool dropout = false);

// kFused on LibTorch 1.x; on 2.x kFused for a model with dropout and kReference without.
// Measured on the small config (no dropout; 2-core Xeon): on 1.13 fused 37.4 against reference
// 40.2 ms/step; on 2.11, whose reference has its own fused attention (SDPA) and AdamW, reference
// 25.6-28.4 against fused 30.8-34.2 ms/step. On the large config (dropout 0.2, 2-core AMD EPYC,
// 2.11) fused 8.6-12.2 against reference 15.4-15.8 s/step: LibTorch draws dropout's flags on one
// thread, qkv's kernel on all (kernels/dropout.h).
KernelPath faster_cpu_kernel_path(bool dropout = false);
std::string to_string(KernelPath path);

}  // namespace qkv
