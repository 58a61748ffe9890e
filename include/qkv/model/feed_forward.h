#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"
#include "qkv/model/linear.h"

namespace qkv {

// The position-wise feed-forward layer: the same two-layer MLP applied to every position alone.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t d_model, int64_t d_ff, bool bias = true, double dropout = 0.0);

  torch::Tensor forward(const torch::Tensor& x);  // (B, T, C) -> (B, T, C)

  Linear fc_in{nullptr};   // C -> d_ff
  Linear fc_out{nullptr};  // d_ff -> C, a residual projection
  torch::nn::Dropout dropout{nullptr};
  KernelPath kernels = KernelPath::kReference;  // kFused: GELU from qkv/kernels/gelu.h on the CPU
};
TORCH_MODULE(FeedForward);

}  // namespace qkv
