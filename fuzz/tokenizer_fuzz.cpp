// A char tokenizer's serialized form (as stored in checkpoints and tokenizer.qkv) on arbitrary
// bytes: refused with std::invalid_argument, or a tokenizer whose encode and decode round-trip.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "qkv/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto tokenizer = qkv::load_tokenizer("char", bytes);
    // Its own vocabulary, spelled out, encodes and decodes back to itself.
    std::string text;
    for (int64_t id = 0; id < tokenizer->vocab_size(); ++id)
      text += tokenizer->piece(static_cast<qkv::TokenId>(id));
    if (tokenizer->decode(tokenizer->encode(text)) != text) __builtin_trap();
    if (tokenizer->serialize() != bytes) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
