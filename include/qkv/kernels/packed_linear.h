#pragma once

#include <memory>

#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/kernels/packed_weight.h"
#include "qkv/model/linear.h"
#include "qkv/model/transformer_lm.h"

namespace qkv {

// A linear layer that, for inference on the CPU (no gradients, float32 input), reads a narrower
// copy of its weight (PackedWeight) made when it was built; with gradients on, or elsewhere, the
// plain product of the reference layer. The copy does not follow later changes to `weight`.
class PackedLinearImpl : public LinearImpl {
 public:
  PackedLinearImpl(const LinearImpl& reference, WeightFormat format);
  torch::Tensor forward(const torch::Tensor& x) override;
  const PackedWeight& packed() const { return *packed_; }

 private:
  std::shared_ptr<const PackedWeight> packed_;
};
TORCH_MODULE(PackedLinear);

// Makes every linear layer of the blocks (W^Q, W^K, W^V, W^O and the feed-forward's) a
// PackedLinear in `format`; kFloat32 makes them reference layers again. Embeddings, layer norms
// and the LM head stay float32. Pack after loading the weights. Returns the bytes the packed
// weights take.
int64_t pack_for_inference(TransformerLM& model, WeightFormat format);

}  // namespace qkv
