#include "qkv/model/token_embedding.h"

#include <cmath>

#include <torch/nn/init.h>

namespace qkv {

TokenEmbeddingImpl::TokenEmbeddingImpl(int64_t vocab_size, int64_t d_model, bool scaled)
    : scale(scaled ? std::sqrt(static_cast<double>(d_model)) : 1.0) {
  weight = register_parameter("weight", torch::empty({vocab_size, d_model}));
  torch::nn::init::normal_(weight, 0.0, 0.02);
}

torch::Tensor TokenEmbeddingImpl::forward(const torch::Tensor& idx) {
  return torch::embedding(weight, idx) * scale;  // (B, T, C)
}

}  // namespace qkv
