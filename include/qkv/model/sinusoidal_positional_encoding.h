#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace qkv {

// Fixed encodings of "Attention Is All You Need":
//   PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
// Computed in float64 so large positions keep their precision, then stored as a float buffer.
class SinusoidalPositionalEncodingImpl : public torch::nn::Module {
 public:
  SinusoidalPositionalEncodingImpl(int64_t max_len, int64_t d_model);

  // Encodings of positions [offset, offset + T): (T, C), broadcast over the batch.
  torch::Tensor forward(int64_t T, int64_t offset = 0);

  static torch::Tensor table(int64_t max_len, int64_t d_model);  // (max_len, C) float64

  torch::Tensor pe;  // (max_len, C) buffer
};
TORCH_MODULE(SinusoidalPositionalEncoding);

}  // namespace qkv
