#pragma once

#include <string>
#include <vector>

#include "qkv/inspect/attention_map.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// Runs `text` through the model once (eval mode, no gradients) and collects every layer's and
// head's attention weights. Throws std::invalid_argument when the text is empty, holds something
// the tokenizer cannot encode, or is longer than the model's context.
AttentionMap probe_attention(TransformerLM& model, const Tokenizer& tokenizer,
                             const std::string& text);

// The same for token ids already encoded; `text` is kept for the record.
AttentionMap probe_attention(TransformerLM& model, const Tokenizer& tokenizer,
                             const std::vector<int32_t>& ids, const std::string& text);

// Encodes `text` for inspection: a clear error (naming `what`, e.g. "--text 2") for text that is
// empty, cannot be encoded, or exceeds `block_size` tokens.
std::vector<int32_t> encode_for_inspection(const Tokenizer& tokenizer, const std::string& text,
                                           int64_t block_size, const std::string& what);

}  // namespace qkv
