#include "qkv/kernels/causal_attention.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

// ld: the row stride of the packed (B, T, 3C) Q|K|V input and its gradient; y and dy are (B, T, C).
struct AttentionDims {
  int64_t B, T, C, H, D, ld;
  float scale;
};

#define QKV_KERNEL_LOOPS "causal_attention_rows.inc"
#include "compile_twice.inc"

const uint8_t* keep_data(const torch::Tensor& keep) {
  return keep.numel() > 0 ? keep.data_ptr<uint8_t>() : nullptr;
}

// The process's BLAS sgemm_ (Fortran interface, column-major): OpenBLAS under Debian's LibTorch,
// MKL inside the PyTorch wheel's. Null where there is none; the module then keeps the reference.
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                       const float*, const int*, const float*, const int*, const float*, float*,
                       const int*);
Sgemm blas_sgemm() {
  static const auto f = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return f;
}

// Row-major C (M, N) = alpha op(A) op(B), A and B read in place with row strides lda and ldb, as
// the column-major product C^T = op(B)^T op(A)^T. Called inside a parallel task, where an OpenMP
// BLAS runs on the calling thread alone.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int m = int(N), n = int(M), k = int(K), la = int(lda), lb = int(ldb), lc = int(ldc);
  const float beta = 0;
  blas_sgemm()(&tb, &ta, &m, &n, &k, &alpha, B, &lb, A, &la, &beta, C, &lc);
}

// One (batch, head) of a (B, T, width) tensor: row t of its columns at data + offset + t * width.
int64_t head_offset(const AttentionDims& s, int64_t bh, int64_t width) {
  return (bh / s.H) * s.T * width + (bh % s.H) * s.D;
}

// Forward, one task per (batch, head): S = scale Q K^T in BLAS (full square: the masked half
// costs less than a product that skips it), the masked softmax in place in att, Y = A V.
// Heads write disjoint columns of y.
void run_forward(const AttentionDims& s, const torch::Tensor& qkv, const torch::Tensor& keep,
                 float keep_scale, torch::Tensor& att, torch::Tensor& y) {
  const auto softmax = cpu_has_avx512() ? avx512::softmax_rows : portable::softmax_rows;
  const float* qp = qkv.data_ptr<float>();
  const float *kp = qp + s.C, *vp = qp + 2 * s.C;
  const uint8_t* kept = keep_data(keep);
  float *ap = att.data_ptr<float>(), *yp = y.data_ptr<float>();
  const int64_t T = s.T, C = s.C, D = s.D, ld = s.ld;
  at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dropped(kept ? T * T : 0);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t in = head_offset(s, bh, ld), out = head_offset(s, bh, C);
      float* p = ap + bh * T * T;
      const uint8_t* keep_bh = kept ? kept + bh * T * T : nullptr;
      gemm(false, true, T, T, D, s.scale, qp + in, ld, kp + in, ld, p, T);
      softmax(p, T, keep_bh, keep_scale, dropped.data());
      gemm(false, false, T, D, T, 1, keep_bh ? dropped.data() : p, T, vp + in, ld, yp + out, C);
    }
  });
}

// Backward, one task per (batch, head), from the probabilities forward kept: dA = dY V^T and
// dV = A^T dY in BLAS, dS in place of dA, then dQ = dS K and dK = dS^T Q (dS carries the scale).
void run_backward(const AttentionDims& s, const torch::Tensor& dy, const torch::Tensor& qkv,
                  const torch::Tensor& keep, float keep_scale, const torch::Tensor& att,
                  torch::Tensor& dqkv) {
  const bool wide = cpu_has_avx512();
  const auto softmax_backward =
      wide ? avx512::softmax_backward_rows : portable::softmax_backward_rows;
  const auto dropped_weights = wide ? avx512::dropped_weights : portable::dropped_weights;
  const float *dyp = dy.data_ptr<float>(), *qp = qkv.data_ptr<float>(), *ap = att.data_ptr<float>();
  const float *kp = qp + s.C, *vp = qp + 2 * s.C;
  const uint8_t* kept = keep_data(keep);
  float* dqp = dqkv.data_ptr<float>();
  float *dkp = dqp + s.C, *dvp = dqp + 2 * s.C;
  const int64_t T = s.T, C = s.C, D = s.D, ld = s.ld;
  at::parallel_for(0, s.B * s.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> d(T * T), dropped(kept ? T * T : 0);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t in = head_offset(s, bh, ld), out = head_offset(s, bh, C);
      const float* p = ap + bh * T * T;
      const uint8_t* keep_bh = kept ? kept + bh * T * T : nullptr;
      if (keep_bh) dropped_weights(p, T, keep_bh, keep_scale, dropped.data());
      gemm(false, true, T, T, D, 1, dyp + out, C, vp + in, ld, d.data(), T);
      gemm(true, false, T, D, T, 1, keep_bh ? dropped.data() : p, T, dyp + out, C, dvp + in, ld);
      softmax_backward(p, T, s.scale, keep_bh, keep_scale, d.data());
      gemm(false, false, T, D, T, 1, d.data(), T, kp + in, ld, dqp + in, ld);
      gemm(true, false, T, D, T, 1, d.data(), T, qp + in, ld, dkp + in, ld);
    }
  });
}

AttentionDims dims_of(const torch::Tensor& qkv, int64_t n_head, double scale) {
  const int64_t C = qkv.size(2) / 3;
  return {qkv.size(0), qkv.size(1), C, n_head, C / n_head, 3 * C, static_cast<float>(scale)};
}

struct CausalAttentionFunction : torch::autograd::Function<CausalAttentionFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv_in,
                               int64_t n_head, double scale, const torch::Tensor& keep,
                               double keep_prob) {
    const auto qkv = qkv_in.contiguous();
    const auto s = dims_of(qkv, n_head, scale);
    auto y = torch::empty({s.B, s.T, s.C}, qkv.options());         // (B, T, C)
    auto att = torch::empty({s.B, s.H, s.T, s.T}, qkv.options());  // (B, H, T, T)
    const auto kept = keep.contiguous();
    run_forward(s, qkv, kept, float(1.0 / keep_prob), att, y);
    ctx->save_for_backward({qkv, att, kept});
    ctx->saved_data["n_head"] = n_head;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["keep_prob"] = keep_prob;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &qkv = saved[0], &att = saved[1], &keep = saved[2];
    const auto s =
        dims_of(qkv, ctx->saved_data["n_head"].toInt(), ctx->saved_data["scale"].toDouble());
    const auto dy = grads[0].contiguous();
    auto dqkv = torch::empty_like(qkv);  // every element written: dQ | dK | dV of each head
    run_backward(s, dy, qkv, keep, float(1.0 / ctx->saved_data["keep_prob"].toDouble()), att, dqkv);
    return {dqkv, {}, {}, {}, {}};
  }
};

}  // namespace

bool causal_attention_supports(const torch::Tensor& x) {
  return blas_sgemm() != nullptr && x.dim() == 3 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat32;
}

torch::Tensor causal_attention(const torch::Tensor& qkv, int64_t n_head, double scale,
                               const torch::Tensor& keep, double keep_prob) {
  TORCH_CHECK(causal_attention_supports(qkv) && qkv.size(2) % 3 == 0,
              "causal_attention: qkv must be a (B, T, 3C) float32 CPU tensor, with a BLAS");
  const int64_t C = qkv.size(2) / 3;
  TORCH_CHECK(n_head > 0 && C % n_head == 0, "causal_attention: C % n_head != 0");
  TORCH_CHECK(!keep.defined() || (keep.scalar_type() == torch::kUInt8 &&
                                  keep.sizes() == torch::IntArrayRef{qkv.size(0), n_head,
                                                                     qkv.size(1), qkv.size(1)}),
              "causal_attention: keep must be a (B, H, T, T) uint8 mask");
  TORCH_CHECK(keep_prob > 0 && keep_prob <= 1, "causal_attention: keep_prob must be in (0, 1]");
  // No mask is an empty one: LibTorch 1.13's autograd functions cannot take undefined tensors.
  const auto mask = keep.defined() ? keep : torch::empty({0}, qkv.options().dtype(torch::kUInt8));
  return CausalAttentionFunction::apply(qkv, n_head, scale, mask, keep_prob);
}

}  // namespace qkv
