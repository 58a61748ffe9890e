#pragma once

#include <torch/types.h>

namespace qkv {

// Layer norm over the last dimension, (x - mean) / sqrt(var + eps) * weight + bias with the
// biased variance (what torch::layer_norm computes), as one CPU loop forward and one backward,
// a LibTorch autograd function. x: (..., C) float32 on the CPU; weight: (C); bias: (C) or
// undefined.
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, double eps);

// Whether layer_norm can take this input: float32 on the CPU, at least one dimension.
bool layer_norm_supports(const torch::Tensor& x);

}  // namespace qkv
