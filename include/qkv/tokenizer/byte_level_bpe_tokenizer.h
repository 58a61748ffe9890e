#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// GPT-2's tokenizer: byte-level BPE. Text is cut into pre-tokens by GPT-2's pattern (contractions,
// letters, numbers, other symbols, whitespace; Unicode classes, by PCRE2), each pre-token's UTF-8
// bytes are written as printable characters (GPT-2's byte-to-unicode table), and merges join
// adjacent symbols, the lowest-ranked pair first, until none applies; each symbol is then a
// vocabulary id. Every byte has an id, so any UTF-8 text encodes, and decoding gives it back
// byte for byte. Special tokens (<|endoftext|>, and any vocabulary entry written <|...|>) are
// matched in the text before the pattern and become their own id. Reads Hugging Face's
// vocab.json and merges.txt.
class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  // vocab.json's and merges.txt's contents ("#version" line optional). Throws
  // std::invalid_argument naming `source` and what is wrong (not JSON, a merge that is not two
  // symbols, a byte without an id, a merge whose result has no id).
  static ByteLevelBpeTokenizer from_files(const std::string& vocab_json,
                                          const std::string& merges_txt, const std::string& source);
  // A Hugging Face tokenizer directory: vocab.json and merges.txt, else tokenizer.json with a BPE
  // model (its vocab and merges). Throws std::invalid_argument naming the directory and the file
  // missing or wrong.
  static ByteLevelBpeTokenizer from_directory(const std::string& dir);
  ByteLevelBpeTokenizer(const ByteLevelBpeTokenizer&) = delete;
  ByteLevelBpeTokenizer(ByteLevelBpeTokenizer&&) noexcept;
  ~ByteLevelBpeTokenizer() override;

  std::string kind() const override { return "bpe"; }
  // Throws std::invalid_argument naming the byte where text is not UTF-8.
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  SpecialIds special_ids() const override;
  // The token's bytes as text (invalid UTF-8 where a token holds part of a character).
  std::string piece(TokenId id) const override;
  // The files it was read from, as read (what a Hugging Face export writes back).
  const std::string& vocab_json() const { return vocab_json_; }
  const std::string& merges_txt() const { return merges_txt_; }
  // vocab.json's and merges.txt's contents, the first preceded by its length.
  std::string serialize() const override;
  static ByteLevelBpeTokenizer deserialize(const std::string& bytes);

  // GPT-2's table: byte b as a printable code point (b itself for printable Latin-1, 256 + n for
  // the n-th other byte), in UTF-8.
  static const std::vector<std::string>& byte_symbols();

 private:
  ByteLevelBpeTokenizer() = default;
  void encode_pretoken(std::string_view bytes, std::vector<TokenId>& out) const;

  std::string vocab_json_, merges_txt_;                    // as read, for serialize()
  std::vector<std::string> pieces_;                        // id -> symbol (byte-to-unicode text)
  std::unordered_map<std::string, TokenId> ids_;           // symbol -> id
  std::unordered_map<std::string, int> ranks_;             // "left right" -> merge rank
  std::vector<std::pair<std::string, TokenId>> specials_;  // <|...|> entries, longest first
  struct Pattern;                                          // the compiled pre-tokenizer (PCRE2)
  std::unique_ptr<Pattern> pattern_;
};

}  // namespace qkv
