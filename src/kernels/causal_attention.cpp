#include "qkv/kernels/causal_attention.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

struct AttentionDims {
  int64_t B, T, C, H, D;
  float scale;
};

// The loops twice: for AVX-512 with FMA, and for any x86-64. Nothing from LibTorch is compiled
// under the wider target, so no inline function of LibTorch's can leak AVX-512 code elsewhere.
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
namespace avx512 {
#include "causal_attention_rows.inc"
}  // namespace avx512
#pragma GCC pop_options
namespace portable {
#include "causal_attention_rows.inc"
}  // namespace portable

const uint8_t* keep_data(const torch::Tensor& keep) {
  return keep.numel() > 0 ? keep.data_ptr<uint8_t>() : nullptr;
}

// Heads are independent and write disjoint columns of y, dq, dk and dv: one task per head.
void run_forward(const AttentionDims& s, const torch::Tensor& q, const torch::Tensor& k,
                 const torch::Tensor& v, const torch::Tensor& keep, float keep_scale,
                 torch::Tensor& att, torch::Tensor& y) {
  const auto fn = cpu_has_avx512() ? avx512::forward_head : portable::forward_head;
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const uint8_t* kept = keep_data(keep);
  float *ap = att.data_ptr<float>(), *yp = y.data_ptr<float>();
  at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> k_t(s.D * s.T);
    for (int64_t bh = begin; bh < end; ++bh)
      fn(s, bh / s.H, bh % s.H, qp, kp, vp, kept ? kept + bh * s.T * s.T : nullptr, keep_scale,
         ap + bh * s.T * s.T, yp, k_t.data());
  });
}

void run_backward(const AttentionDims& s, const torch::Tensor& dy, const torch::Tensor& q,
                  const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& keep,
                  float keep_scale, const torch::Tensor& att, torch::Tensor& dq, torch::Tensor& dk,
                  torch::Tensor& dv) {
  const auto fn = cpu_has_avx512() ? avx512::backward_head : portable::backward_head;
  const float *dyp = dy.data_ptr<float>(), *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(),
              *vp = v.data_ptr<float>(), *ap = att.data_ptr<float>();
  const uint8_t* kept = keep_data(keep);
  float *dqp = dq.data_ptr<float>(), *dkp = dk.data_ptr<float>(), *dvp = dv.data_ptr<float>();
  at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(s.T), v_t(s.D * s.T);
    for (int64_t bh = begin; bh < end; ++bh)
      fn(s, bh / s.H, bh % s.H, dyp, qp, kp, vp, kept ? kept + bh * s.T * s.T : nullptr, keep_scale,
         ap + bh * s.T * s.T, dqp, dkp, dvp, row.data(), v_t.data());
  });
}

AttentionDims dims_of(const torch::Tensor& q, int64_t n_head, double scale) {
  const int64_t C = q.size(2);
  return {q.size(0), q.size(1), C, n_head, C / n_head, static_cast<float>(scale)};
}

struct CausalAttentionFunction : torch::autograd::Function<CausalAttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in, int64_t n_head,
                               double scale, const torch::Tensor& keep, double keep_prob) {
    const auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    const auto s = dims_of(q, n_head, scale);
    auto y = torch::empty_like(q);                               // (B, T, C)
    auto att = torch::empty({s.B, s.H, s.T, s.T}, q.options());  // (B, H, T, T), lower triangle
    const auto kept = keep.contiguous();
    run_forward(s, q, k, v, kept, float(1.0 / keep_prob), att, y);
    ctx->save_for_backward({q, k, v, att, kept});
    ctx->saved_data["n_head"] = n_head;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["keep_prob"] = keep_prob;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &att = saved[3], &keep = saved[4];
    const auto s =
        dims_of(q, ctx->saved_data["n_head"].toInt(), ctx->saved_data["scale"].toDouble());
    const auto dy = grads[0].contiguous();
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    run_backward(s, dy, q, k, v, keep, float(1.0 / ctx->saved_data["keep_prob"].toDouble()), att,
                 dq, dk, dv);
    return {dq, dk, dv, {}, {}, {}, {}};
  }
};

}  // namespace

bool causal_attention_supports(const torch::Tensor& x) {
  return x.dim() == 3 && x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t n_head, double scale,
                               const torch::Tensor& keep, double keep_prob) {
  TORCH_CHECK(causal_attention_supports(q) && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "causal_attention: q, k, v must be equal (B, T, C) float32 CPU tensors");
  TORCH_CHECK(n_head > 0 && q.size(2) % n_head == 0, "causal_attention: C % n_head != 0");
  TORCH_CHECK(!keep.defined() ||
                  (keep.scalar_type() == torch::kUInt8 &&
                   keep.sizes() == torch::IntArrayRef{q.size(0), n_head, q.size(1), q.size(1)}),
              "causal_attention: keep must be a (B, H, T, T) uint8 mask");
  TORCH_CHECK(keep_prob > 0 && keep_prob <= 1, "causal_attention: keep_prob must be in (0, 1]");
  // No mask is an empty one: LibTorch 1.13's autograd functions cannot take undefined tensors.
  const auto mask = keep.defined() ? keep : torch::empty({0}, q.options().dtype(torch::kUInt8));
  return CausalAttentionFunction::apply(q, k, v, n_head, scale, mask, keep_prob);
}

}  // namespace qkv
