// A char, word or byte-level BPE tokenizer's serialized form (as stored in checkpoints and
// tokenizer.qkv) on arbitrary bytes: refused with std::invalid_argument, or a tokenizer whose
// encode and decode round-trip and that serializes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace {

void check(const std::string& kind, const std::string& bytes) {
  try {
    auto tokenizer = qkv::load_tokenizer(kind, bytes);
    std::string text;
    for (int64_t id = 0; id < tokenizer->vocab_size(); ++id) {
      const auto piece = tokenizer->piece(static_cast<qkv::TokenId>(id));
      // Each token of the vocabulary encodes to itself alone.
      if (tokenizer->encode(piece) != std::vector<qkv::TokenId>{static_cast<qkv::TokenId>(id)})
        __builtin_trap();
      text += piece;
    }
    // The vocabulary spelled out decodes back to itself, where it encodes at all.
    try {
      if (tokenizer->decode(tokenizer->encode(text)) != text) __builtin_trap();
    } catch (const std::invalid_argument&) {
      if (kind == "char") __builtin_trap();  // every character is in its own vocabulary
    }
    if (tokenizer->serialize() != bytes) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
}

// GPT-2's byte-level BPE: any UTF-8 text round-trips (a token's bytes need not encode to that
// token: merges decide), and the form serializes back to the same bytes.
void check_bpe(const std::string& bytes) {
  try {
    auto tokenizer = qkv::load_tokenizer("bpe", bytes);
    const std::string text = "The king's  r\u00f6ver \u6771\u4eac 42\t\n <|endoftext|>!! ";
    if (tokenizer->decode(tokenizer->encode(text)) != text) __builtin_trap();
    for (int64_t id = 0; id < tokenizer->vocab_size(); ++id)
      tokenizer->piece(static_cast<qkv::TokenId>(id));
    if (tokenizer->serialize() != bytes) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  check("char", bytes);
  check("word", bytes);
  check_bpe(bytes);
  return 0;
}
