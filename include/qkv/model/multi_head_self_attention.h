#pragma once

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"
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
  // kFused: a causal forward over a whole float32 CPU sequence (training, evaluation) runs
  // qkv's own attention-core kernel (qkv/kernels/causal_attention.h); asking for the weights, a
  // cache, CUDA or another dtype keeps the reference formula below.
  TORCH_ARG(KernelPath, kernels) = KernelPath::kReference;
};

// softmax(Q K^T / sqrt(d_k)) V, with Q = x W^Q, K = x W^K, V = x W^V per head, the heads
// concatenated and projected by W^O.
class MultiHeadSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadSelfAttentionImpl(const MultiHeadSelfAttentionOptions& options);

  // x: (B, T, C) -> (B, T, C). If `weights` is given it receives the attention weights
  // (B, H, T, T_past + T) before dropout, through the explicit path below; otherwise, on
  // LibTorch 2.1+, the same formula runs as one fused scaled_dot_product_attention call. With
  // `cache`, x holds only the new positions.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* weights = nullptr,
                        KVCache* cache = nullptr);

  // Whether this LibTorch has the fused attention call (2.1 and later).
  static bool sdpa_available();

  MultiHeadSelfAttentionOptions options;
  Linear w_q{nullptr}, w_k{nullptr}, w_v{nullptr}, w_o{nullptr};
  torch::nn::Dropout attn_dropout{nullptr}, resid_dropout{nullptr};

 private:
  torch::Tensor fused_cpu_attention(const torch::Tensor& x, double scale);  // (B, T, C)
  torch::Tensor project_qkv(const torch::Tensor& x);                        // (B, T, 3C)
  torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, double scale, int64_t past);
};
TORCH_MODULE(MultiHeadSelfAttention);

}  // namespace qkv
