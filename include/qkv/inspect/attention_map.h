#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/tokenizer/token_id.h"

namespace qkv {

// The attention weights of every layer and head of one forward pass over a text, with the
// tokens they refer to. Plain data (no LibTorch) so tables, heatmaps and reports can use it.
struct AttentionMap {
  std::string text;
  std::vector<TokenId> ids;
  std::vector<std::string> tokens;  // the tokenizer's piece for each id
  int64_t n_layer = 0;
  int64_t n_head = 0;
  // (n_layer, n_head, T, T), row-major: weights[l][h][query][key]. Each row is a softmax over
  // the keys a query may see, so it sums to 1 and is 0 to the right of the diagonal.
  std::vector<float> weights;

  int64_t length() const { return static_cast<int64_t>(tokens.size()); }
  float at(int64_t layer, int64_t head, int64_t query, int64_t key) const;
  // One head's (T, T) block, or (head = -1) the heads' mean.
  std::vector<float> head(int64_t layer, int64_t head) const;

  // {"text", "tokens", "token_ids", "n_layer", "n_head", "weights": [L][H][T][T]}.
  std::string to_json() const;
};

}  // namespace qkv
