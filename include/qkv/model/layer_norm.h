#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qkv {

// Normalises each position's features to mean 0, variance 1, then applies a learned gain and
// (optionally) bias. Written out because torch::nn::LayerNorm cannot drop only the bias.
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t d_model, bool bias = true, double eps = 1e-5);
  virtual ~LayerNormImpl() = default;

  virtual torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)

  torch::Tensor weight;
  torch::Tensor bias;  // undefined when bias is off
  double eps;
};
TORCH_MODULE(LayerNorm);

}  // namespace qkv
