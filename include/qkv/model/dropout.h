#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qkv {

// Zeroes each element with probability p while training and scales the rest by 1/(1-p), so the
// expected value is unchanged; the identity in evaluation. torch::nn::Dropout's computation, as a
// module whose forward the engine can replace (kernels/accelerate.h draws the flags on every
// thread).
class DropoutImpl : public torch::nn::Module {
 public:
  explicit DropoutImpl(double p = 0.5) : p(p) {}
  virtual ~DropoutImpl() = default;

  virtual torch::Tensor forward(const torch::Tensor& x) {
    return torch::dropout(x, p, is_training());
  }

  double p;
};
TORCH_MODULE(Dropout);

}  // namespace qkv
