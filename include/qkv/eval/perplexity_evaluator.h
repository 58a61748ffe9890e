#pragma once

#include <cstdint>
#include <vector>

#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/token_id.h"

namespace qkv {

struct PerplexityOptions {
  int64_t stride = 0;      // 0 = block_size (disjoint windows)
  int64_t batch_size = 8;  // windows per forward pass

  // Throws InvalidOption naming the field; the stride's upper bound (the model's context) is
  // checked by evaluate_perplexity.
  void validate() const;
};

struct PerplexityResult {
  int64_t tokens_scored = 0;
  double mean_nll = 0;       // nats per token
  double perplexity = 0;     // exp(mean_nll)
  int64_t bytes = 0;         // bytes of text the scored tokens stand for (0 if unknown)
  double bits_per_byte = 0;  // total NLL in bits / bytes: comparable across tokenizers
  double seconds = 0;
  double tokens_per_s = 0;
};

// Sliding-window perplexity, as Hugging Face computes it: windows of block_size tokens start every
// `stride` tokens; each window scores only the tokens no earlier window scored, so every token
// after the first (which has no context to be predicted from) is scored exactly once, with
// block_size - stride tokens of context or more (all it has, near the start).
// `bytes` is the byte length of the text of tokens[1:], for bits per byte.
PerplexityResult evaluate_perplexity(TransformerLM model, const std::vector<TokenId>& tokens,
                                     int64_t bytes, const PerplexityOptions& options);

}  // namespace qkv
