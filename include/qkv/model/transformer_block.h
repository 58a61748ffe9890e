#pragma once

#include "qkv/model/feed_forward.h"
#include "qkv/model/kv_cache.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/model_config.h"
#include "qkv/model/multi_head_self_attention.h"
#include "qkv/model/step_stage.h"

namespace qkv {

// One decoder layer, pre-norm as in GPT-2: x + attn(ln1(x)), then x + ffn(ln2(x)). The residual
// path stays an identity so gradients reach early layers undiminished.
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const ModelConfig& config);

  // (B, T, C) -> (B, T, C). `on_stage` is told when the attention half and the feed-forward half
  // end.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* attention_weights = nullptr,
                        KVCache* cache = nullptr, const StageHook& on_stage = {});

  LayerNorm ln1{nullptr}, ln2{nullptr};
  MultiHeadSelfAttention attn{nullptr};
  FeedForward ffn{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace qkv
