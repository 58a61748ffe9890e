#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "qkv/tokenizer/token_id.h"

namespace qkv {

// Ids a tokenizer reserves; -1 where it has none.
struct SpecialIds {
  TokenId unk = -1;
  TokenId bos = -1;
  TokenId eos = -1;
  TokenId pad = -1;
};

// Text <-> token ids. Implementations are immutable once built, so one may be shared.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string kind() const = 0;  // "char" or "sentencepiece"
  virtual std::vector<TokenId> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<TokenId>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual SpecialIds special_ids() const = 0;
  // The text of one token as a human reads it (attention tables, logs).
  virtual std::string piece(TokenId id) const = 0;
  // Bytes from which load_tokenizer() rebuilds this tokenizer; stored in checkpoints.
  virtual std::string serialize() const = 0;

  // encode(), with an error's message prefixed by `source` ("prompt", a file name, an option),
  // so the user learns which text held the character the vocabulary lacks.
  std::vector<TokenId> encode_from(std::string_view text, const std::string& source) const;

  // The id generation starts from when the prompt is empty: BOS if there is one, else a newline
  // if the vocabulary has it, else id 0.
  TokenId start_id() const;
};

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& kind, const std::string& bytes);

// A tokenizer file: one line with the kind, then the serialized bytes.
std::string tokenizer_file_bytes(const Tokenizer& tokenizer);
void save_tokenizer_file(const Tokenizer& tokenizer, const std::string& path);
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);

}  // namespace qkv
