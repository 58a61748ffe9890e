#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qkv {

// The static embedding: one learned vector per token id, times sqrt(d_model). The same token
// gets the same vector whatever its context; only self-attention makes it contextual.
class TokenEmbeddingImpl : public torch::nn::Module {
 public:
  TokenEmbeddingImpl(int64_t vocab_size, int64_t d_model, bool scaled = true);

  torch::Tensor forward(const torch::Tensor& idx);  // (B, T) int64 -> (B, T, C)

  torch::Tensor weight;  // (vocab_size, C); also the LM head when weights are tied
  // sqrt(d_model), as in "Attention Is All You Need" (section 3.4). The weights start small
  // (N(0, 0.02), GPT-2's initialisation); unscaled, the sinusoidal codes (amplitude 1) would drown
  // them and the model would learn mostly from positions at first. 1 when not scaled (GPT-2).
  double scale;
};
TORCH_MODULE(TokenEmbedding);

}  // namespace qkv
