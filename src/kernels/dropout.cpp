#include "qkv/kernels/dropout.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "cpu_features.h"

namespace qkv {

namespace {

#define QKV_KERNEL_LOOPS "dropout_rows.inc"
#include "compile_twice.inc"

// Chunks of 64 elements per task: at least 256 chunks (16 Ki elements), below that a thread
// costs more than it saves.
constexpr int64_t kGrainChunks = 256;

int64_t chunks_of(int64_t n) {
  return (n + 63) / 64;
}

// The next seed from LibTorch's default CPU generator: torch::manual_seed governs it.
uint64_t draw_seed() {
  return static_cast<uint64_t>(
      torch::randint(std::numeric_limits<int64_t>::max(), {1}, torch::kLong).item<int64_t>());
}

// P(word < threshold) = threshold / 2^32 = keep_prob, to 2^-32.
uint32_t keep_threshold(double keep_prob) {
  return static_cast<uint32_t>(std::min(std::ldexp(keep_prob, 32), 4294967295.0));
}

// y = keep(seed) * x * scale over all of x, on every thread.
torch::Tensor apply_keep(const torch::Tensor& x_in, uint64_t seed, double keep_prob) {
  const auto x = x_in.contiguous();
  auto y = torch::empty_like(x);
  const auto fn = cpu_has_avx512() ? avx512::dropout_chunks : portable::dropout_chunks;
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t n = x.numel();
  const uint32_t threshold = keep_threshold(keep_prob);
  const float scale = static_cast<float>(1.0 / keep_prob);
  at::parallel_for(0, chunks_of(n), kGrainChunks, [&](int64_t begin, int64_t end) {
    fn(xp, seed, threshold, scale, n, begin, end, yp);
  });
  return y;
}

// Only the seed is kept for backward: the flags are drawn again from it.
struct DropoutFunction : torch::autograd::Function<DropoutFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double keep_prob) {
    const uint64_t seed = draw_seed();
    ctx->saved_data["seed"] = static_cast<int64_t>(seed);
    ctx->saved_data["keep_prob"] = keep_prob;
    return apply_keep(x, seed, keep_prob);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {apply_keep(grads[0], seed, ctx->saved_data["keep_prob"].toDouble()), torch::Tensor()};
  }
};

}  // namespace

bool dropout_supports(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat32;
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  TORCH_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0) return x;
  TORCH_CHECK(dropout_supports(x), "dropout: x must be a float32 CPU tensor");
  if (p == 1) return x * 0;  // nothing kept, as torch::dropout
  return DropoutFunction::apply(x, 1 - p);
}

torch::Tensor bernoulli_mask(at::IntArrayRef sizes, double keep_prob) {
  TORCH_CHECK(keep_prob >= 0 && keep_prob <= 1, "bernoulli_mask: keep_prob must be in [0, 1]");
  auto keep = torch::empty(sizes, torch::kUInt8);
  if (keep_prob == 1) return keep.fill_(1);
  const uint64_t seed = draw_seed();
  const uint32_t threshold = keep_threshold(keep_prob);
  const auto fn = cpu_has_avx512() ? avx512::bernoulli_chunks : portable::bernoulli_chunks;
  uint8_t* kp = keep.data_ptr<uint8_t>();
  const int64_t n = keep.numel();
  at::parallel_for(0, chunks_of(n), kGrainChunks,
                   [&](int64_t begin, int64_t end) { fn(seed, threshold, n, begin, end, kp); });
  return keep;
}

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> key) {
  portable::philox_rounds(c[0], c[1], c[2], c[3], key[0], key[1]);
  return c;
}

}  // namespace qkv
