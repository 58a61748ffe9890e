#pragma once

#include <deque>
#include <vector>

#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/token_id.h"

namespace qkv {

// Feeds tokens to a model one step at a time and returns the logits for the next token.
//
// The model sees the last block_size tokens, exactly as recomputing the whole (cropped) context
// at every step would. With the KV cache each new token costs one position's attention. When the
// context is full and a token arrives, the oldest token leaves the window; cached keys carry
// their absolute positions (sinusoidal codes are added at the input), so the cache is rebuilt
// from the window: the last block_size - 1 tokens plus the new one, in one batched forward pass.
// Past the context length a step therefore costs about what recomputation costs; below it, one
// position.
class IncrementalDecoder {
 public:
  IncrementalDecoder(TransformerLM model, bool use_kv_cache);

  // Appends tokens to the context; returns float32 logits (V) on the CPU for the next token.
  torch::Tensor feed(const std::vector<TokenId>& tokens);

  const std::deque<TokenId>& context() const { return context_; }
  int64_t rebuilds() const { return rebuilds_; }  // how often the window slid

 private:
  torch::Tensor forward(const std::vector<TokenId>& tokens, bool with_cache);

  TransformerLM model_;
  bool use_cache_;
  int64_t block_size_;
  std::deque<TokenId> context_;
  std::vector<KVCache> caches_;
  int64_t rebuilds_ = 0;
};

}  // namespace qkv
