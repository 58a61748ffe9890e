#include "qkv/model/sinusoidal_positional_encoding.h"

#include <cmath>

namespace qkv {

SinusoidalPositionalEncodingImpl::SinusoidalPositionalEncodingImpl(int64_t max_len,
                                                                   int64_t d_model) {
  pe = register_buffer("pe", table(max_len, d_model).to(torch::kFloat32));
}

torch::Tensor SinusoidalPositionalEncodingImpl::table(int64_t max_len, int64_t d_model) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto pos = torch::arange(max_len, f64).unsqueeze(1);              // (L, 1)
  auto two_i = torch::arange(0, d_model, 2, f64);                   // (C/2)
  auto angle = pos / torch::pow(10000.0, two_i / double(d_model));  // (L, C/2)
  auto out = torch::empty({max_len, d_model}, f64);
  out.slice(1, 0, d_model, 2).copy_(torch::sin(angle));
  out.slice(1, 1, d_model, 2).copy_(torch::cos(angle));
  return out;
}

torch::Tensor SinusoidalPositionalEncodingImpl::forward(int64_t T, int64_t offset) {
  return pe.narrow(0, offset, T);  // (T, C)
}

}  // namespace qkv
