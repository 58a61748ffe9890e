#include "qkv/model/layer_norm.h"

#include "qkv/kernels/layer_norm.h"

namespace qkv {

LayerNormImpl::LayerNormImpl(int64_t d_model, bool use_bias, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({d_model}));
  if (use_bias) bias = register_parameter("bias", torch::zeros({d_model}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  if (kernels == KernelPath::kFused && layer_norm_supports(x))
    return qkv::layer_norm(x, weight, bias, eps);
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

}  // namespace qkv
