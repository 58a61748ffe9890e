#pragma once

#include <tuple>

#include "qkv/model/feed_forward.h"
#include "qkv/model/kv_cache.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/model_config.h"
#include "qkv/model/multi_head_self_attention.h"

namespace qkv {

// One decoder layer, pre-norm as in GPT-2: x + attn(ln1(x)), then x + ffn(ln2(x)). The residual
// path stays an identity so gradients reach early layers undiminished.
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const ModelConfig& config);

  // (B, T, C) -> (B, T, C). With `cache`, x holds only the new positions.
  torch::Tensor forward(const torch::Tensor& x, KVCache* cache = nullptr);

  // The same output and the attention weights (B, H, T, T), by the explicit formula.
  std::tuple<torch::Tensor, torch::Tensor> forward_with_weights(const torch::Tensor& x);

  LayerNorm ln1{nullptr}, ln2{nullptr};
  MultiHeadSelfAttention attn{nullptr};
  FeedForward ffn{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace qkv
