#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "qkv/generate/generation_options.h"
#include "qkv/tokenizer/token_id.h"

namespace qkv {

// Picks the next token from logits: temperature, then top-k, then top-p (the order Hugging Face
// applies them), then a draw from the remaining distribution with its own seeded generator, so
// the same seed gives the same text whatever else uses the global RNG.
class TokenSampler {
 public:
  explicit TokenSampler(const SamplingOptions& options);

  TokenId sample(const torch::Tensor& logits);  // logits (V) -> token id

  // Logits with everything outside the top_k highest set to -inf (top_k 0 keeps all).
  static torch::Tensor top_k_filter(const torch::Tensor& logits, int64_t top_k);
  // Logits with everything outside the smallest set of most likely tokens whose probability
  // mass reaches top_p set to -inf.
  static torch::Tensor top_p_filter(const torch::Tensor& logits, double top_p);

 private:
  SamplingOptions options_;
  at::Generator generator_;
};

}  // namespace qkv
