#pragma once

#include <string>
#include <vector>

#include "qkv/inspect/attention_map.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// TransformerLM::inspect over `ids` (batch 1) in eval mode, without gradients: every layer's
// attention weights, the embeddings and hidden states. The model's train/eval mode is restored
// afterwards.
Inspection run_for_inspection(TransformerLM& model, const std::vector<TokenId>& ids);

// Every layer's and head's attention weights over `ids`, the encoding of `text` (kept for the
// record).
AttentionMap probe_attention(TransformerLM& model, const Tokenizer& tokenizer,
                             const std::vector<TokenId>& ids, const std::string& text);

// Encodes `text` for inspection: a clear error (naming `what`, e.g. "sentence 2") for text that is
// empty, cannot be encoded, or exceeds `block_size` tokens.
std::vector<TokenId> encode_for_inspection(const Tokenizer& tokenizer, const std::string& text,
                                           int64_t block_size, const std::string& what);

}  // namespace qkv
