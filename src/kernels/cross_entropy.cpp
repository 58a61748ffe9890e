#include "qkv/kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

#define QKV_KERNEL_LOOPS "cross_entropy_rows.inc"
#include "compile_twice.inc"

// Rows per task: at least 16 Ki floats, below that a thread costs more than it saves.
int64_t grain_rows(int64_t V) {
  return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(V, 1));
}

struct CrossEntropyFunction : torch::autograd::Function<CrossEntropyFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets) {
    const int64_t N = logits.size(0), V = logits.size(1);
    auto lse = torch::empty({N}, logits.options());
    auto row_loss = torch::empty({N}, logits.options());
    const auto fn =
        cpu_has_avx512() ? avx512::cross_entropy_forward : portable::cross_entropy_forward;
    const float* xp = logits.data_ptr<float>();
    const int64_t* tp = targets.data_ptr<int64_t>();
    float *lp = lse.data_ptr<float>(), *rp = row_loss.data_ptr<float>();
    at::parallel_for(0, N, grain_rows(V),
                     [&](int64_t begin, int64_t end) { fn(xp, tp, V, begin, end, lp, rp); });
    // The mean in double, in row order: the same sum whatever the thread count.
    double sum = 0;
    for (int64_t r = 0; r < N; ++r) sum += rp[r];
    ctx->save_for_backward({logits, targets, lse});
    return torch::full({}, N > 0 ? sum / double(N) : NAN, logits.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &logits = saved[0], &targets = saved[1], &lse = saved[2];
    const int64_t N = logits.size(0), V = logits.size(1);
    const float scale = grads[0].item<float>() / static_cast<float>(std::max<int64_t>(N, 1));
    auto dx = torch::empty_like(logits);
    const auto fn =
        cpu_has_avx512() ? avx512::cross_entropy_backward : portable::cross_entropy_backward;
    const float *xp = logits.data_ptr<float>(), *lp = lse.data_ptr<float>();
    const int64_t* tp = targets.data_ptr<int64_t>();
    float* dp = dx.data_ptr<float>();
    at::parallel_for(0, N, grain_rows(V),
                     [&](int64_t begin, int64_t end) { fn(xp, tp, lp, scale, V, begin, end, dp); });
    return {dx, torch::Tensor()};
  }
};

}  // namespace

bool cross_entropy_supports(const torch::Tensor& logits, const torch::Tensor& targets) {
  return logits.dim() == 2 && logits.device().is_cpu() && logits.scalar_type() == torch::kFloat32 &&
         targets.dim() == 1 && targets.device().is_cpu() && targets.scalar_type() == torch::kLong &&
         targets.size(0) == logits.size(0);
}

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(cross_entropy_supports(logits, targets),
              "cross_entropy: logits must be (N, V) float32 and targets (N) int64, on the CPU");
  const auto t = targets.contiguous();
  const int64_t V = logits.size(1);
  // A target outside the vocabulary would index past its row: refuse it, naming it.
  const int64_t* tp = t.data_ptr<int64_t>();
  const int64_t* bad =
      std::find_if(tp, tp + t.numel(), [V](int64_t id) { return id < 0 || id >= V; });
  TORCH_CHECK(bad == tp + t.numel(), "cross_entropy: target ", bad == tp + t.numel() ? 0 : *bad,
              " at row ", bad - tp, " is outside the vocabulary [0, ", V, ")");
  return CrossEntropyFunction::apply(logits.contiguous(), t);
}

}  // namespace qkv
