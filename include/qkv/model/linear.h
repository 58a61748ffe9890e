#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qkv {

// y = x W^T + b, as torch::nn::Linear (same parameter names and initial values), except that a
// layer without bias has no "bias" entry at all, and that forward is one the engine can replace
// (kernels/packed_linear.h reads a narrower copy of W for inference).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);

  virtual torch::Tensor forward(const torch::Tensor& x);  // (..., in) -> (..., out)

  int64_t in_features, out_features;
  bool with_bias;
  torch::Tensor weight;  // (out, in)
  torch::Tensor bias;    // (out), undefined without bias
};
TORCH_MODULE(Linear);

}  // namespace qkv
