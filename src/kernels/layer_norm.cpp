#include "qkv/kernels/layer_norm.h"

#include <algorithm>
#include <cstdint>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

#define QKV_KERNEL_LOOPS "layer_norm_rows.inc"
#include "compile_twice.inc"

// Rows per task: at least 16 Ki floats, below that a thread costs more than it saves.
int64_t grain_rows(int64_t C) {
  return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(C, 1));
}

const float* data_or_null(const torch::Tensor& t) {
  return t.numel() > 0 ? t.data_ptr<float>() : nullptr;
}

struct LayerNormFunction : torch::autograd::Function<LayerNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps) {
    const auto x = x_in.contiguous();
    const int64_t C = x.size(-1), rows = x.numel() / std::max<int64_t>(C, 1);
    auto y = torch::empty_like(x);
    auto mean = torch::empty({rows}, x.options()), rstd = torch::empty({rows}, x.options());
    const auto fn = cpu_has_avx512() ? avx512::layer_norm_forward : portable::layer_norm_forward;
    const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>(), *bp = data_or_null(bias);
    float *yp = y.data_ptr<float>(), *mp = mean.data_ptr<float>(), *sp = rstd.data_ptr<float>();
    at::parallel_for(0, rows, grain_rows(C), [&](int64_t begin, int64_t end) {
      fn(xp, wp, bp, static_cast<float>(eps), C, begin, end, yp, mp, sp);
    });
    ctx->save_for_backward({x, weight, bias, mean, rstd});
    return y;
  }

  // Rows split into one chunk per thread, each summing its own dw and db; the chunks' sums are
  // added in order afterwards, so no two threads write the same float.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[3],
               &rstd = saved[4];
    const auto dy = grads[0].contiguous();
    const int64_t C = x.size(-1), rows = mean.size(0);
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
    auto dx = torch::empty_like(x);
    auto dw_parts = torch::zeros({chunks, C}, x.options());
    auto db_parts = torch::zeros({chunks, C}, x.options());
    const bool has_bias = bias.numel() > 0;
    const auto fn = cpu_has_avx512() ? avx512::layer_norm_backward : portable::layer_norm_backward;
    const float *dyp = dy.data_ptr<float>(), *xp = x.data_ptr<float>(),
                *wp = weight.data_ptr<float>(), *mp = mean.data_ptr<float>(),
                *sp = rstd.data_ptr<float>();
    float *dxp = dx.data_ptr<float>(), *dwp = dw_parts.data_ptr<float>(),
          *dbp = db_parts.data_ptr<float>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        fn(dyp, xp, wp, mp, sp, C, rows * c / chunks, rows * (c + 1) / chunks, dxp, dwp + c * C,
           has_bias ? dbp + c * C : nullptr);
    });
    return {dx, dw_parts.sum(0), has_bias ? db_parts.sum(0) : torch::Tensor(), {}};
  }
};

}  // namespace

bool layer_norm_supports(const torch::Tensor& x) {
  return x.dim() >= 1 && x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, double eps) {
  const int64_t C = x.dim() >= 1 ? x.size(-1) : 0;
  TORCH_CHECK(layer_norm_supports(x), "layer_norm: x must be a float32 CPU tensor");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == C && weight.scalar_type() == torch::kFloat32,
              "layer_norm: weight must be (C) float32 with C = x.size(-1)");
  TORCH_CHECK(
      !bias.defined() || (bias.sizes() == weight.sizes() && bias.scalar_type() == torch::kFloat32),
      "layer_norm: bias must be undefined or (C) float32");
  TORCH_CHECK(eps > 0, "layer_norm: eps must be positive");
  // No bias is an empty one: LibTorch 1.13's autograd functions cannot take undefined tensors.
  const auto b = bias.defined() ? bias.contiguous() : torch::empty({0}, x.options());
  return LayerNormFunction::apply(x, weight.contiguous(), b, eps);
}

}  // namespace qkv
