#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/dropout.h"
#include "qkv/model/linear.h"

namespace qkv {

// The position-wise feed-forward layer: the same two-layer MLP applied to every position alone,
// widening to d_ff with GELU between.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t d_model, int64_t d_ff, bool bias = true, double dropout = 0.0);
  virtual ~FeedForwardImpl() = default;

  virtual torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)

  Linear fc_in{nullptr};   // C -> d_ff
  Linear fc_out{nullptr};  // d_ff -> C, a residual projection
  Dropout dropout{nullptr};
};
TORCH_MODULE(FeedForward);

}  // namespace qkv
