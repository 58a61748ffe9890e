#include "qkv/model/multi_head_self_attention.h"

#include <cmath>
#include <limits>

#include <torch/version.h>

#include "qkv/kernels/causal_attention.h"
#include "qkv/kernels/dropout.h"
#include "qkv/model/dropout.h"
#include "qkv/runtime/autocast_scope.h"

// at::scaled_dot_product_attention with its `scale` argument: LibTorch 2.1 and later.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define QKV_HAVE_SDPA 1
#endif

namespace qkv {

namespace {

// (B, T, C) -> (B, H, T, D): each head sees its own D = C / H channels.
torch::Tensor split_heads(const torch::Tensor& x, int64_t H) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  return x.view({B, T, H, C / H}).transpose(1, 2);
}

// (B, H, T, D) -> (B, T, C): the heads concatenated.
torch::Tensor merge_heads(const torch::Tensor& y) {
  const int64_t B = y.size(0), H = y.size(1), T = y.size(2), D = y.size(3);
  return y.transpose(1, 2).reshape({B, T, H * D});
}

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
  attn_dropout = register_module("attn_dropout", torch::nn::Dropout(opts.dropout()));
  resid_dropout = register_module("resid_dropout", torch::nn::Dropout(opts.dropout()));
}

torch::Tensor MultiHeadSelfAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* weights,
                                                  KVCache* cache) {
  const int64_t H = options.n_head(), T = x.size(1), D = x.size(2) / H;
  const double scale = options.scale_scores() ? 1.0 / std::sqrt(double(D)) : 1.0;
  // Under bf16 autocast the projections come out bf16, which the fp32 kernel does not take.
  if (options.kernels() == KernelPath::kFused && options.causal() && !weights && !cache &&
      causal_attention_supports(x) && !autocast_enabled(x.device().type()))
    return apply_dropout(resid_dropout, w_o(fused_cpu_attention(x, scale)), KernelPath::kFused);

  // Three products, not one over the concatenated weights: on a CPU fusing saved ~1% of a
  // reference training step but cost 13% of generation speed (copying the weights every token),
  // measured. On a GPU, over whole sequences, one (B, T, 3C) product is what pays: one input cast,
  // one bias gradient and one input gradient instead of three each.
  torch::Tensor q, k, v;
  if (x.is_cuda() && !cache) {
    auto qkv = project_qkv(x).chunk(3, 2);  // 3 x (B, T, C)
    q = split_heads(qkv[0], H), k = split_heads(qkv[1], H), v = split_heads(qkv[2], H);
  } else {
    q = split_heads(w_q(x), H);  // (B, H, T, D)
    k = split_heads(w_k(x), H);
    v = split_heads(w_v(x), H);
  }
  if (cache) std::tie(k, v) = cache->append(k, v);  // (B, H, past + T, D)
  const int64_t past = k.size(2) - T;

  const bool masked = options.causal() && T > 1;  // a single query is the newest position

  torch::Tensor y;  // (B, H, T, D)
  if (!weights && sdpa_available()) {
    y = fused_attention(q, k, v, scale, masked ? past : -1);
  } else {
    if (scale != 1.0) q = q * scale;                      // cheaper on (T, D) than (T, T)
    auto scores = torch::matmul(q, k.transpose(-2, -1));  // (B, H, T, past + T)
    if (masked)
      scores = scores.masked_fill(future_mask(T, past, x.device()),
                                  -std::numeric_limits<float>::infinity());
    auto att = torch::softmax(scores, -1);  // (B, H, T, past + T); each row sums to 1
    if (weights) *weights = att;
    y = torch::matmul(attn_dropout(att), v);
  }
  return resid_dropout(w_o(merge_heads(y)));  // (B, T, C)
}

// The projections stay (B, T, C): the kernel reads each head's columns in place.
torch::Tensor MultiHeadSelfAttentionImpl::fused_cpu_attention(const torch::Tensor& x,
                                                              double scale) {
  const int64_t B = x.size(0), H = options.n_head(), T = x.size(1);
  const double p = is_training() ? attn_dropout->options.p() : 0.0;
  torch::Tensor keep;  // attention dropout: which weights survive, drawn on every thread
  if (p > 0) keep = bernoulli_mask({B, H, T, T}, 1 - p);
  return causal_attention(project_qkv(x), H, scale, keep, 1 - p);  // (B, T, C)
}

// Q | K | V as one product over the stacked weights: one BLAS call forward and two backward
// instead of three and six (small config, 2-core AMD EPYC: 39.3 -> 38.1 ms/step). Stacking copies
// the weights (3C^2 floats), noise beside the product over B * T rows.
torch::Tensor MultiHeadSelfAttentionImpl::project_qkv(const torch::Tensor& x) {
  if (w_q->packed())  // inference from narrower copies of the weights: each reads its own
    return torch::cat({w_q(x), w_k(x), w_v(x)}, 2);
  const auto weight = torch::cat({w_q->weight, w_k->weight, w_v->weight});  // (3C, C)
  const auto bias =
      w_q->bias.defined() ? torch::cat({w_q->bias, w_k->bias, w_v->bias}) : torch::Tensor();
  return torch::linear(x, weight, bias);  // (B, T, 3C)
}

bool MultiHeadSelfAttentionImpl::sdpa_available() {
#ifdef QKV_HAVE_SDPA
  return true;
#else
  return false;
#endif
}

// The same softmax(Q K^T * scale) V in one call, which picks a flash or memory-efficient kernel
// where the device has one: the (T, T) scores are never stored. `past` >= 0 masks the future of
// queries that start at position `past`; -1 masks nothing.
torch::Tensor MultiHeadSelfAttentionImpl::fused_attention(const torch::Tensor& q,
                                                          const torch::Tensor& k,
                                                          const torch::Tensor& v, double scale,
                                                          int64_t past) {
#ifdef QKV_HAVE_SDPA
  const double p = is_training() ? attn_dropout->options.p() : 0.0;
  if (past <= 0)  // no cache, or an empty one: the plain lower triangle
    return at::scaled_dot_product_attention(q, k, v, {}, p, /*is_causal=*/past == 0, scale);
  const auto allowed = future_mask(q.size(2), past, q.device()).logical_not();  // True: attend
  return at::scaled_dot_product_attention(q, k, v, allowed, p, false, scale);
#else
  (void)q, (void)k, (void)v, (void)scale, (void)past;
  throw std::logic_error("scaled_dot_product_attention needs LibTorch 2.1 or later");
#endif
}

}  // namespace qkv
