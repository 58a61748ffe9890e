#include "qkv/model/linear.h"

#include <cmath>

#include <torch/nn/init.h>

namespace qkv {

LinearImpl::LinearImpl(int64_t in, int64_t out, bool use_bias)
    : in_features(in), out_features(out), with_bias(use_bias) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  bias = with_bias ? register_parameter("bias", torch::empty({out_features})) : torch::Tensor();
  // torch::nn::Linear's initial values (the model re-initialises them anyway).
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(double(in_features));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return torch::linear(x, weight, bias);
}

}  // namespace qkv
