#pragma once

#include <torch/types.h>

namespace qkv {

// The causal attention core softmax(Q K^T * scale, future masked) V of every head in one fused
// CPU kernel with a hand-written backward, as a LibTorch autograd function. qkv: (B, T, 3C)
// float32 on the CPU, Q, K and V side by side as one product x [W^Q; W^K; W^V]^T gives them,
// head h of each in columns [h*D, (h+1)*D) of its block with D = C / n_head: the BLAS reads each
// head in place, so none is ever transposed or copied, and the gradient is one (B, T, 3C) tensor
// for the one product's backward. Returns y: (B, T, C), the heads already concatenated. The
// products run in the BLAS, per head; the masked softmax and its backward in qkv's own loops
// between them; the softmax probabilities are the one (B, H, T, T) tensor kept for backward.
//
// `keep` (optional): attention dropout as a (B, H, T, T) uint8 mask of kept weights, each kept
// weight scaled by 1 / keep_prob.
torch::Tensor causal_attention(const torch::Tensor& qkv, int64_t n_head, double scale,
                               const torch::Tensor& keep = {}, double keep_prob = 1.0);

// Whether causal_attention can take this input: float32 on the CPU, three dimensions, and the
// process has a BLAS (sgemm_).
bool causal_attention_supports(const torch::Tensor& x);

}  // namespace qkv
