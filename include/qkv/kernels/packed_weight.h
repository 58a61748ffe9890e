#pragma once

#include <string>

#include <torch/types.h>

namespace qkv {

// How a linear layer's weight is stored for inference on the CPU.
enum class WeightFormat {
  kFloat32,   // as trained: the plain LibTorch product
  kBFloat16,  // rounded to the nearest bfloat16: half the bytes
  kInt8,      // int8 with one float scale per output row (max |w| / 127): a quarter
};

// "fp32", "bf16" or "int8"; throws std::invalid_argument naming what it got otherwise.
WeightFormat parse_weight_format(const std::string& name);
std::string weight_format_name(WeightFormat format);

// A weight W (out, in) in bfloat16 or int8, and y = x W^T + b computed from it.
//
// Generating one token at batch 1 is a matrix-vector product per layer that reads every weight
// once, so its speed is the bytes read: the narrower copy is read directly by a kernel that widens
// it to float32 in registers (products and sums stay float32). For more than a few rows at once
// (a prompt) the weight is widened into a float32 matrix and BLAS does the product.
class PackedWeight {
 public:
  // weight: float32 (out, in) on the CPU. format must not be kFloat32.
  PackedWeight(const torch::Tensor& weight, WeightFormat format);

  // x: (..., in) float32 on the CPU; bias: (out) or undefined. Returns (..., out) float32.
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& bias) const;

  // The weight the products use, widened back to float32 (out, in).
  torch::Tensor widened() const;

  WeightFormat format() const { return format_; }
  int64_t bytes() const;  // of the packed weight and its scales

 private:
  void matvec(const float* x, const float* bias, float* y) const;  // one row of x

  WeightFormat format_;
  torch::Tensor data_;    // (out, in): kBFloat16 or kChar
  torch::Tensor scales_;  // (out) float32, int8 only
};

}  // namespace qkv
