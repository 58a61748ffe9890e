#pragma once

#include <torch/types.h>

namespace qkv {

// What differs between the LibTorch versions qkv builds with (Debian's 1.13, a wheel's 2.x),
// behind plain functions, so that no other file needs a version conditional for it.

// Whether at::scaled_dot_product_attention with a `scale` argument exists (LibTorch 2.1+).
bool sdpa_available();

// softmax(q k^T * scale + mask) v in one call, which picks a flash or memory-efficient kernel
// where the device has one. q: (B, H, T, D), k and v: (B, H, S, D). `allowed` (T, S), where
// defined, is true where a query may attend; `causal` masks the plain lower triangle. Throws
// where sdpa_available() is false.
torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& allowed,
                                           double dropout_p, bool causal, double scale);

}  // namespace qkv
