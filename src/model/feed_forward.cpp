#include "qkv/model/feed_forward.h"

namespace qkv {

FeedForwardImpl::FeedForwardImpl(int64_t d_model, int64_t d_ff, bool bias, double p,
                                 std::string approximate_)
    : approximate(std::move(approximate_)) {
  fc_in = register_module("fc_in", Linear(d_model, d_ff, bias));
  fc_out = register_module("fc_out", Linear(d_ff, d_model, bias));
  dropout = register_module("dropout", Dropout(p));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto h = torch::gelu(fc_in(x), approximate);  // (B, T, d_ff)
  return dropout(fc_out(h));                    // (B, T, C)
}

}  // namespace qkv
