#include "qkv/model/feed_forward.h"

#include "qkv/kernels/gelu.h"
#include "qkv/model/dropout.h"

namespace qkv {

FeedForwardImpl::FeedForwardImpl(int64_t d_model, int64_t d_ff, bool bias, double p) {
  fc_in = register_module("fc_in", Linear(d_model, d_ff, bias));
  fc_out = register_module("fc_out", Linear(d_ff, d_model, bias));
  dropout = register_module("dropout", torch::nn::Dropout(p));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto h = fc_in(x);  // (B, T, d_ff)
  h = kernels == KernelPath::kFused && gelu_supports(h) ? qkv::gelu(h) : torch::gelu(h);
  return apply_dropout(dropout, fc_out(h), kernels);
}

}  // namespace qkv
