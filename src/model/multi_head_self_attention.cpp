#include "qkv/model/multi_head_self_attention.h"

#include <cmath>
#include <limits>

#include "qkv/runtime/torch_compat.h"

namespace qkv {

namespace {

// True where query i (at absolute position past + i) would see a key after it: keys
// past + i + 1 .. past + T - 1 of the (T, past + T) score matrix.
torch::Tensor future_mask(int64_t T, int64_t past, const torch::Device& device) {
  return torch::ones({T, past + T}, torch::TensorOptions().dtype(torch::kBool).device(device))
      .triu(past + 1);
}

}  // namespace

MultiHeadSelfAttentionImpl::MultiHeadSelfAttentionImpl(const MultiHeadSelfAttentionOptions& opts)
    : options(opts) {
  TORCH_CHECK(opts.d_model() % opts.n_head() == 0, "d_model must be divisible by n_head");
  auto linear = [&](const char* name) {
    return register_module(name, Linear(opts.d_model(), opts.d_model(), opts.bias()));
  };
  w_q = linear("w_q");
  w_k = linear("w_k");
  w_v = linear("w_v");
  w_o = linear("w_o");
  attn_dropout = register_module("attn_dropout", Dropout(opts.dropout()));
  resid_dropout = register_module("resid_dropout", Dropout(opts.dropout()));
}

torch::Tensor MultiHeadSelfAttentionImpl::forward(const torch::Tensor& x, KVCache* cache) {
  const int64_t H = options.n_head();
  auto q = split_heads(w_q(x), H);  // (B, H, T, D)
  auto k = split_heads(w_k(x), H);
  auto v = split_heads(w_v(x), H);
  if (cache) std::tie(k, v) = cache->append(k, v);          // (B, H, past + T, D)
  return resid_dropout(w_o(merge_heads(attend(q, k, v))));  // (B, T, C)
}

std::tuple<torch::Tensor, torch::Tensor> MultiHeadSelfAttentionImpl::forward_with_weights(
    const torch::Tensor& x, KVCache* cache) {
  const int64_t H = options.n_head();
  auto q = split_heads(w_q(x), H), k = split_heads(w_k(x), H), v = split_heads(w_v(x), H);
  if (cache) std::tie(k, v) = cache->append(k, v);
  torch::Tensor weights;
  auto y = attend(q, k, v, &weights);
  return {resid_dropout(w_o(merge_heads(y))), weights};
}

torch::Tensor MultiHeadSelfAttentionImpl::attend(const torch::Tensor& q_in, const torch::Tensor& k,
                                                 const torch::Tensor& v, torch::Tensor* weights) {
  const int64_t T = q_in.size(2), past = k.size(2) - T;
  const bool masked = options.causal() && T > 1;  // a single query is the newest position
  const double p = is_training() ? attn_dropout->p : 0.0;
  if (!weights && sdpa_available()) {
    if (!masked || past == 0)  // nothing to mask, or the plain lower triangle
      return scaled_dot_product_attention(q_in, k, v, {}, p, masked, scale());
    const auto allowed = future_mask(T, past, q_in.device()).logical_not();  // true: attend
    return scaled_dot_product_attention(q_in, k, v, allowed, p, false, scale());
  }
  auto q = scale() != 1.0 ? q_in * scale() : q_in;      // cheaper on (T, D) than on (T, T)
  auto scores = torch::matmul(q, k.transpose(-2, -1));  // (B, H, T, past + T)
  if (masked)
    scores = scores.masked_fill(future_mask(T, past, q.device()),
                                -std::numeric_limits<float>::infinity());
  auto att = torch::softmax(scores, -1);  // (B, H, T, past + T); each row sums to 1
  if (weights) *weights = att;
  return torch::matmul(attn_dropout(att), v);  // (B, H, T, D)
}

double MultiHeadSelfAttentionImpl::scale() const {
  const double d_k = double(options.d_model() / options.n_head());
  return options.scale_scores() ? 1.0 / std::sqrt(d_k) : 1.0;
}

// Each head sees its own D = C / H channels.
torch::Tensor MultiHeadSelfAttentionImpl::split_heads(const torch::Tensor& x, int64_t H) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  return x.view({B, T, H, C / H}).transpose(1, 2);
}

// The heads concatenated.
torch::Tensor MultiHeadSelfAttentionImpl::merge_heads(const torch::Tensor& y) {
  const int64_t B = y.size(0), H = y.size(1), T = y.size(2), D = y.size(3);
  return y.transpose(1, 2).reshape({B, T, H * D});
}

}  // namespace qkv
