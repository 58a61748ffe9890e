#include "qkv/kernels/gelu.h"

#include <cstdint>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

#define QKV_KERNEL_LOOPS "gelu_rows.inc"
#include "compile_twice.inc"

// Elements in chunks of at least 16 Ki floats per task: below that a thread costs more than it
// saves.
constexpr int64_t kGrain = 1 << 14;

struct GeluFunction : torch::autograd::Function<GeluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in) {
    const auto x = x_in.contiguous();
    auto y = torch::empty_like(x);
    const auto fn = cpu_has_avx512() ? avx512::gelu_forward : portable::gelu_forward;
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain,
                     [&](int64_t begin, int64_t end) { fn(xp + begin, yp + begin, end - begin); });
    ctx->save_for_backward({x});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    const auto dy = grads[0].contiguous();
    auto dx = torch::empty_like(x);
    const auto fn = cpu_has_avx512() ? avx512::gelu_backward : portable::gelu_backward;
    const float *dyp = dy.data_ptr<float>(), *xp = x.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain, [&](int64_t begin, int64_t end) {
      fn(dyp + begin, xp + begin, dxp + begin, end - begin);
    });
    return {dx};
  }
};

}  // namespace

bool gelu_supports(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
}

torch::Tensor gelu(const torch::Tensor& x) {
  TORCH_CHECK(gelu_supports(x), "gelu: x must be a float32 CPU tensor");
  return GeluFunction::apply(x);
}

}  // namespace qkv
