#include "qkv/model/transformer_block.h"

namespace qkv {

TransformerBlockImpl::TransformerBlockImpl(const ModelConfig& c) {
  ln1 = register_module("ln1", LayerNorm(c.d_model, c.bias));
  attn = register_module(
      "attn",
      MultiHeadSelfAttention(
          MultiHeadSelfAttentionOptions(c.d_model, c.n_head).bias(c.bias).dropout(c.dropout)));
  ln2 = register_module("ln2", LayerNorm(c.d_model, c.bias));
  ffn = register_module("ffn", FeedForward(c.d_model, c.ffn_dim(), c.bias, c.dropout));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x,
                                            torch::Tensor* attention_weights, KVCache* cache,
                                            const StageHook& on_stage) {
  auto h = x + attn(ln1(x), attention_weights, cache);  // positions exchange information
  if (on_stage) on_stage(StepStage::kAttention);
  auto y = h + ffn(ln2(h));  // each position alone
  if (on_stage) on_stage(StepStage::kFeedForward);
  return y;
}

}  // namespace qkv
