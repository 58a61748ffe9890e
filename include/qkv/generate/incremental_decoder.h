#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "qkv/generate/decode_step.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/token_id.h"

namespace qkv {

// Feeds tokens to a model one step at a time and returns the logits for the next token.
//
// The model sees at most block_size tokens. With the KV cache each new token costs one
// position's attention. Cached keys carry their absolute positions (sinusoidal codes are added
// at the input), so when the context is full and a token arrives the window must be computed
// again from position 0. `keep` chooses how much of it stays:
//   keep = 1 (exact): the oldest token leaves and the last block_size tokens are recomputed at
//     every new token, exactly as recomputing the cropped context each step would; past the
//     context a step costs a whole window's forward pass.
//   0 < keep < 1 (chunked slide): the newest keep x block_size tokens stay, are recomputed once,
//     and the cache fills again; the model sees between keep x block_size and block_size tokens,
//     and past the context a step costs one position plus a recomputation every
//     (1 - keep) x block_size tokens.
// Both modes give the same logits with or without the cache.
class IncrementalDecoder {
 public:
  // Throws std::invalid_argument unless 0 < keep <= 1.
  IncrementalDecoder(TransformerLM model, bool use_kv_cache, double keep = 1.0);

  // Appends tokens to the context; returns float32 logits (V) on the CPU for the next token.
  torch::Tensor feed(const std::vector<TokenId>& tokens);

  const std::deque<TokenId>& context() const { return context_; }
  int64_t rebuilds() const { return rebuilds_; }  // how often the window slid (with the cache)

 private:
  torch::Tensor forward(const std::vector<TokenId>& tokens, bool with_cache);

  TransformerLM model_;
  bool use_cache_;
  int64_t block_size_;
  int64_t keep_tokens_;  // context left after a slide
  std::deque<TokenId> context_;
  std::vector<KVCache> caches_;
  std::unique_ptr<DecodeStep> step_;  // on a GPU, made at the first token after the prompt
  int64_t rebuilds_ = 0;
};

}  // namespace qkv
