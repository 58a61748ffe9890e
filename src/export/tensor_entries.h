#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "qkv/io/safetensors.h"

namespace qkv {

// Tensors gathered for one safetensors file: each kept as a contiguous CPU copy for as long as
// the entries that view its bytes.
class TensorEntries {
 public:
  void add(const std::string& name, const torch::Tensor& tensor);
  const std::vector<SafetensorsTensor>& entries() const { return entries_; }

 private:
  std::vector<torch::Tensor> kept_;
  std::vector<SafetensorsTensor> entries_;
};

// The safetensors dtype of a LibTorch dtype; throws std::invalid_argument for one it lacks.
std::string safetensors_dtype(torch::ScalarType type);

}  // namespace qkv
