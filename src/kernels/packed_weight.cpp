#include "qkv/kernels/packed_weight.h"

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <cstring>
#include <stdexcept>

namespace qkv {

WeightFormat parse_weight_format(const std::string& name) {
  if (name == "fp32") return WeightFormat::kFloat32;
  if (name == "bf16") return WeightFormat::kBFloat16;
  if (name == "int8") return WeightFormat::kInt8;
  throw std::invalid_argument("weight format: expected fp32, bf16 or int8, got '" + name + "'");
}

std::string weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kFloat32:
      return "fp32";
    case WeightFormat::kBFloat16:
      return "bf16";
    case WeightFormat::kInt8:
      return "int8";
  }
  return "?";
}

namespace {

// --- one row's dot product: w (n, narrow) . x (n, float32) ---------------------------------------

// bfloat16 is the top half of a float32: widening is a 16-bit shift.
float widen(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

float widen(int8_t q) {
  return float(q);
}

template <class Narrow>
float dot_scalar(const Narrow* w, const float* x, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = 0; k < n; ++k) sum += widen(w[k]) * x[k];
  return sum;
}

// 16 weights widened to float32 in registers.
__attribute__((target("avx512f"))) inline __m512 widen16(const int8_t* w) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}

__attribute__((target("avx512f"))) inline __m512 widen16(const uint16_t* w) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

// Four accumulators of 16 lanes hide the FMA latency.
template <class Narrow>
__attribute__((target("avx512f"))) float dot_avx512(const Narrow* w, const float* x, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 64 <= n; k += 64) {
    a0 = _mm512_fmadd_ps(widen16(w + k), _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(widen16(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
    a2 = _mm512_fmadd_ps(widen16(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
    a3 = _mm512_fmadd_ps(widen16(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
  }
  for (; k + 16 <= n; k += 16) a0 = _mm512_fmadd_ps(widen16(w + k), _mm512_loadu_ps(x + k), a0);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; k < n; ++k) sum += widen(w[k]) * x[k];
  return sum;
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

// Below this many rows of x the weight is read once per row by the kernel; from it on, widening
// the weight once and calling BLAS is cheaper.
constexpr int64_t kMaxKernelRows = 4;

}  // namespace

PackedWeight::PackedWeight(const torch::Tensor& weight, WeightFormat format) : format_(format) {
  if (weight.dim() != 2 || weight.scalar_type() != torch::kFloat32 || !weight.device().is_cpu())
    throw std::invalid_argument("a packed weight starts from a float32 (out, in) CPU matrix");
  torch::NoGradGuard no_grad;
  const auto w = weight.detach().contiguous();
  if (format == WeightFormat::kBFloat16) {
    data_ = w.to(torch::kBFloat16);  // round to nearest even
  } else if (format == WeightFormat::kInt8) {
    // A row of zeros keeps scale 1 so that nothing divides by zero.
    scales_ = w.abs().amax(1).div(127.0).clamp_min(1e-30);  // (out)
    data_ = w.div(scales_.unsqueeze(1)).round().clamp(-127, 127).to(torch::kChar);
  } else {
    throw std::invalid_argument("fp32 weights need no packing");
  }
}

int64_t PackedWeight::bytes() const {
  return data_.numel() * data_.element_size() +
         (scales_.defined() ? scales_.numel() * scales_.element_size() : 0);
}

torch::Tensor PackedWeight::widened() const {
  if (format_ == WeightFormat::kBFloat16) return data_.to(torch::kFloat32);
  return data_.to(torch::kFloat32).mul(scales_.unsqueeze(1));
}

void PackedWeight::matvec(const float* x, const float* bias, float* y) const {
  const int64_t out = data_.size(0), in = data_.size(1);
  const bool wide = has_avx512();
  const auto* q = data_.scalar_type() == torch::kChar ? data_.data_ptr<int8_t>() : nullptr;
  const auto* h = q ? nullptr : reinterpret_cast<const uint16_t*>(data_.data_ptr<at::BFloat16>());
  const float* scale = q ? scales_.data_ptr<float>() : nullptr;
  // Rows split over LibTorch's intra-op threads (see CoreOwner).
  at::parallel_for(0, out, 32, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float dot =
          q ? (wide ? dot_avx512(q + r * in, x, in) : dot_scalar(q + r * in, x, in)) * scale[r]
            : (wide ? dot_avx512(h + r * in, x, in) : dot_scalar(h + r * in, x, in));
      y[r] = bias ? dot + bias[r] : dot;
    }
  });
}

torch::Tensor PackedWeight::linear(const torch::Tensor& x, const torch::Tensor& bias) const {
  const int64_t out = data_.size(0), in = data_.size(1);
  if (x.size(-1) != in || x.scalar_type() != torch::kFloat32 || !x.device().is_cpu())
    throw std::invalid_argument("packed linear: expected float32 CPU input (..., " +
                                std::to_string(in) + ")");
  const auto rows = x.reshape({-1, in}).contiguous();  // (M, in)
  if (rows.size(0) > kMaxKernelRows) return torch::linear(x, widened(), bias);
  auto sizes = x.sizes().vec();
  sizes.back() = out;
  auto y = torch::empty({rows.size(0), out}, torch::kFloat32);
  const auto b = bias.defined() ? bias.contiguous() : bias;
  for (int64_t m = 0; m < rows.size(0); ++m)
    matvec(rows[m].data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr,
           y[m].data_ptr<float>());
  return y.view(sizes);
}

}  // namespace qkv
