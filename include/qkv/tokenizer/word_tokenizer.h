#pragma once

#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// One token per word: a run of characters other than space and newline, with the spaces before
// it ("money", " bank"); a newline is a token, and so are spaces before a newline or the end.
// Decoding concatenates, so text comes back byte for byte. The vocabulary is the sorted set of
// the training corpus's tokens; a token outside it is an error that names it. Made for small
// template corpora (configs/senses.yaml), where one word must be one position: the model's
// vector at "bank" then predicts the next word, which the word's sense decides.
class WordTokenizer : public Tokenizer {
 public:
  // `pieces`: the vocabulary in id order, distinct and non-empty.
  explicit WordTokenizer(std::vector<std::string> pieces);

  // Collects a corpus's tokens, chunk by chunk (chunks end at a newline), for the vocabulary.
  class VocabularyBuilder {
   public:
    void add(std::string_view text);
    WordTokenizer build() const;

   private:
    std::set<std::string> seen_;
  };

  // The text split into its tokens, as encode() splits it.
  static std::vector<std::string_view> split(std::string_view text);

  std::string kind() const override { return "word"; }
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  SpecialIds special_ids() const override { return {}; }
  std::string piece(TokenId id) const override;
  // The pieces, each followed by a NUL byte (no piece holds one: they are UTF-8 text).
  std::string serialize() const override;
  static WordTokenizer deserialize(const std::string& bytes);

 private:
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, TokenId> ids_;
};

}  // namespace qkv
