#include "qkv/model/layer_norm.h"

namespace qkv {

LayerNormImpl::LayerNormImpl(int64_t d_model, bool use_bias, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({d_model}));
  if (use_bias) bias = register_parameter("bias", torch::zeros({d_model}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

}  // namespace qkv
