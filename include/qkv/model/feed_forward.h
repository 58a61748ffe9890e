#pragma once

#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/dropout.h"
#include "qkv/model/linear.h"

namespace qkv {

// The position-wise feed-forward layer: the same two-layer MLP applied to every position alone,
// widening to d_ff with GELU between: exact (approximate "none") or GPT-2's tanh form ("tanh").
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t d_model, int64_t d_ff, bool bias = true, double dropout = 0.0,
                  std::string approximate = "none");
  virtual ~FeedForwardImpl() = default;

  virtual torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)

  Linear fc_in{nullptr};   // C -> d_ff
  Linear fc_out{nullptr};  // d_ff -> C, a residual projection
  Dropout dropout{nullptr};
  std::string approximate;  // torch::gelu's: "none" or "tanh"
};
TORCH_MODULE(FeedForward);

}  // namespace qkv
