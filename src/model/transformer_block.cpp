#include "qkv/model/transformer_block.h"

namespace qkv {

TransformerBlockImpl::TransformerBlockImpl(const ModelConfig& c) {
  ln1 = register_module("ln1", LayerNorm(c.d_model, c.bias));
  attn = register_module(
      "attn",
      MultiHeadSelfAttention(
          MultiHeadSelfAttentionOptions(c.d_model, c.n_head).bias(c.bias).dropout(c.dropout)));
  ln2 = register_module("ln2", LayerNorm(c.d_model, c.bias));
  ffn = register_module("ffn", FeedForward(c.d_model, c.ffn_dim(), c.bias, c.dropout,
                                           c.activation == "gelu_tanh" ? "tanh" : "none"));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, KVCache* cache) {
  auto h = x + attn(ln1(x), cache);  // positions exchange information
  return h + ffn(ln2(h));            // each position alone
}

std::tuple<torch::Tensor, torch::Tensor> TransformerBlockImpl::forward_with_weights(
    const torch::Tensor& x) {
  auto [a, weights] = attn->forward_with_weights(ln1(x));
  auto h = x + a;
  return {h + ffn(ln2(h)), weights};
}

}  // namespace qkv
