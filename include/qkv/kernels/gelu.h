#pragma once

#include <torch/types.h>

namespace qkv {

// GELU with the exact Gaussian CDF, x * Phi(x) (what torch::gelu computes), as one CPU loop
// forward and one backward, a LibTorch autograd function. x: float32 on the CPU, any shape.
// Phi comes from a vectorised approximation good to 1.5e-7 absolute, as in PyTorch's own kernel.
torch::Tensor gelu(const torch::Tensor& x);

// Whether gelu can take this input: float32 on the CPU.
bool gelu_supports(const torch::Tensor& x);

}  // namespace qkv
