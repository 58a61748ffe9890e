#pragma once

#include <tuple>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/dropout.h"
#include "qkv/model/kv_cache.h"
#include "qkv/model/linear.h"

namespace qkv {

struct MultiHeadSelfAttentionOptions {
  MultiHeadSelfAttentionOptions(int64_t d_model, int64_t n_head)
      : d_model_(d_model), n_head_(n_head) {}
  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, n_head);
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(double, dropout) = 0.0;
  // A language model may not look ahead; the lecture's worked example looks both ways.
  TORCH_ARG(bool, causal) = true;
  // Divide scores by sqrt(d_k) so their variance does not grow with d_k; the lecture's example
  // leaves it out to keep the numbers hand-checkable.
  TORCH_ARG(bool, scale_scores) = true;
};

// softmax(Q K^T / sqrt(d_k)) V, with Q = x W^Q, K = x W^K, V = x W^V per head, the heads
// concatenated and projected by W^O.
class MultiHeadSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadSelfAttentionImpl(const MultiHeadSelfAttentionOptions& options);
  virtual ~MultiHeadSelfAttentionImpl() = default;

  // x: (B, T, C) -> (B, T, C). With `cache`, x holds only the new positions and attends to the
  // cached ones too. Where LibTorch has it (2.1+), the attention core is one fused
  // scaled_dot_product_attention call, as nanoGPT's `flash`; otherwise the formula below.
  virtual torch::Tensor forward(const torch::Tensor& x, KVCache* cache = nullptr);

  // The same output and the attention weights (B, H, T, past + T) before dropout, always by
  // the explicit formula: what inspection reads.
  std::tuple<torch::Tensor, torch::Tensor> forward_with_weights(const torch::Tensor& x,
                                                                KVCache* cache = nullptr);

  MultiHeadSelfAttentionOptions options;
  Linear w_q{nullptr}, w_k{nullptr}, w_v{nullptr}, w_o{nullptr};
  Dropout attn_dropout{nullptr}, resid_dropout{nullptr};

 protected:
  double scale() const;  // 1 / sqrt(d_k), or 1 without scaling
  // softmax(q k^T * scale) v over heads: q (B, H, T, D), k and v (B, H, past + T, D). With
  // `weights`, by the explicit formula, which stores the weights there.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       torch::Tensor* weights = nullptr);
  static torch::Tensor split_heads(const torch::Tensor& x, int64_t H);  // (B,T,C)->(B,H,T,D)
  static torch::Tensor merge_heads(const torch::Tensor& y);             // (B,H,T,D)->(B,T,C)
};
TORCH_MODULE(MultiHeadSelfAttention);

}  // namespace qkv
