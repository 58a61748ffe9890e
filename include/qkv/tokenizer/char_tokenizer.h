#pragma once

#include <unordered_map>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// One token per Unicode character (UTF-8 code point); the vocabulary is the sorted set of
// characters of the training corpus. A character outside it is an error that names it and its
// position: silently mapping it elsewhere would corrupt evaluation.
class CharTokenizer : public Tokenizer {
 public:
  // `characters`: the vocabulary as UTF-8 text, one code point per token, in id order.
  explicit CharTokenizer(const std::string& characters);

  // Collects code points of a corpus, chunk by chunk, for the vocabulary.
  class VocabularyBuilder {
   public:
    void add(std::string_view text);
    CharTokenizer build() const;

   private:
    std::vector<bool> seen_ = std::vector<bool>(0x110000, false);
  };

  std::string kind() const override { return "char"; }
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(chars_.size()); }
  SpecialIds special_ids() const override { return {}; }
  std::string piece(TokenId id) const override;
  std::string serialize() const override;

 private:
  std::vector<std::string> chars_;                              // id -> UTF-8 bytes
  std::unordered_map<uint32_t, TokenId> ids_;                   // code point -> id
  std::vector<TokenId> ascii_ = std::vector<TokenId>(128, -1);  // fast path for ASCII
};

// UTF-8 helpers shared by the char tokenizer and the data preparation.
// Decodes the code point at text[*pos], advancing *pos; throws on malformed UTF-8.
uint32_t next_code_point(std::string_view text, size_t* pos);
std::string encode_utf8(uint32_t code_point);

}  // namespace qkv
