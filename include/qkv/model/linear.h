#pragma once

#include <memory>

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/packed_weight.h"

namespace qkv {

// y = x W^T + b, as torch::nn::Linear (same parameter names and initial values), plus an optional
// narrower copy of W that inference on the CPU reads instead (see PackedWeight).
class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);

  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);  // (..., in) -> (..., out)

  // Keeps a copy of the current weight in `format` (kFloat32 drops it). While the copy exists,
  // forward passes without gradients on the CPU use it; the copy does not follow later changes to
  // `weight`, so pack after loading. Training ignores it: with gradients on, forward is the plain
  // product.
  void pack_weight(WeightFormat format);
  const PackedWeight* packed() const { return packed_.get(); }

  int64_t in_features, out_features;
  bool with_bias;
  torch::Tensor weight;  // (out, in)
  torch::Tensor bias;    // (out), undefined without bias

 private:
  std::shared_ptr<const PackedWeight> packed_;
};
TORCH_MODULE(Linear);

}  // namespace qkv
