#pragma once

#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"
#include "qkv/model/dropout.h"
#include "qkv/model/feed_forward.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/multi_head_self_attention.h"

namespace qkv {

// The engine's versions of the reference modules: each is made from a reference module, shares
// its parameters under the same names, and computes the same function. Where the input is one
// the kernel takes (float32 on the CPU, no cache, no autocast) it runs qkv's CPU kernel with its
// hand-written backward; elsewhere the reference module's forward. accelerate() installs them.

// Attention. kFused on the CPU: the attention core of kernels/causal_attention.h over one
// (B, T, 3C) Q|K|V product. On CUDA over whole sequences, on either path, that one product
// feeds scaled_dot_product_attention: one input cast, one bias gradient and one input gradient
// instead of three each. On a CPU the three products stay: there fusing saved ~1% of a reference
// training step but cost 13% of generation speed (copying the weights every token), measured.
class FusedSelfAttentionImpl : public MultiHeadSelfAttentionImpl {
 public:
  FusedSelfAttentionImpl(const MultiHeadSelfAttentionImpl& reference, KernelPath path);
  torch::Tensor forward(const torch::Tensor& x, KVCache* cache = nullptr) override;
  KernelPath path;

 private:
  torch::Tensor cpu_kernel_attention(const torch::Tensor& x);  // (B, T, C)
  torch::Tensor project_qkv(const torch::Tensor& x);           // (B, T, 3C)
};
TORCH_MODULE(FusedSelfAttention);

// Layer norm in one pass per row forward and one backward (kernels/layer_norm.h).
class FusedLayerNormImpl : public LayerNormImpl {
 public:
  explicit FusedLayerNormImpl(const LayerNormImpl& reference) : LayerNormImpl(reference) {}
  torch::Tensor forward(const torch::Tensor& x) override;
};
TORCH_MODULE(FusedLayerNorm);

// The feed-forward layer with GELU's exact CDF in one vectorised loop each way (kernels/gelu.h).
class FusedFeedForwardImpl : public FeedForwardImpl {
 public:
  explicit FusedFeedForwardImpl(const FeedForwardImpl& reference) : FeedForwardImpl(reference) {}
  torch::Tensor forward(const torch::Tensor& x) override;
};
TORCH_MODULE(FusedFeedForward);

// Dropout whose flags are drawn on every thread (kernels/dropout.h): the same distribution and
// scaling, from another generator.
class FusedDropoutImpl : public DropoutImpl {
 public:
  explicit FusedDropoutImpl(const DropoutImpl& reference) : DropoutImpl(reference) {}
  torch::Tensor forward(const torch::Tensor& x) override;
};
TORCH_MODULE(FusedDropout);

}  // namespace qkv
