#pragma once

#include <torch/types.h>

namespace qkv {

// Mean next-token cross-entropy, -log softmax(logits)[target] averaged over rows (what
// torch::cross_entropy_loss computes), as one CPU loop forward and one backward, a LibTorch
// autograd function. logits: (N, V) float32 on the CPU; targets: (N) int64, each in [0, V).
// Forward keeps one log-sum-exp per row, not the (N, V) log-softmax the reference keeps; backward
// writes softmax - one-hot straight into the gradient.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

// Whether cross_entropy can take these inputs: (N, V) float32 logits on the CPU, (N) int64
// targets.
bool cross_entropy_supports(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace qkv
