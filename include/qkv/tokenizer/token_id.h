#pragma once

#include <cstdint>

namespace qkv {

// A token's index in its vocabulary, the one type the tokenizer, generation and evaluation
// share. 32 bits: token files hold uint16 or uint32, and vocabularies stay far below 2^31. It is
// widened to int64 only where it becomes a tensor of indices.
using TokenId = int32_t;

}  // namespace qkv
