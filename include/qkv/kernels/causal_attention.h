#pragma once

#include <torch/types.h>

namespace qkv {

// The causal attention core softmax(Q K^T * scale, future masked) V of every head in one fused
// CPU kernel with a hand-written backward, as a LibTorch autograd function. q, k, v: (B, T, C)
// float32 on the CPU, head h in columns [h*D, (h+1)*D) with D = C / n_head, exactly as the
// projections produce them: the BLAS reads each head in place, so none is ever transposed or
// copied. Returns y: (B, T, C), the heads already concatenated. The products run in the BLAS,
// per head; the masked softmax and its backward in qkv's own loops between them; the softmax
// probabilities are the one (B, H, T, T) tensor kept for backward.
//
// `keep` (optional): attention dropout as a (B, H, T, T) uint8 mask of kept weights, each kept
// weight scaled by 1 / keep_prob.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t n_head, double scale,
                               const torch::Tensor& keep = {}, double keep_prob = 1.0);

// Whether causal_attention can take this input: float32 on the CPU, three dimensions, and the
// process has a BLAS (sgemm_).
bool causal_attention_supports(const torch::Tensor& x);

}  // namespace qkv
