#include "qkv/tokenizer/word_tokenizer.h"

#include <stdexcept>

namespace qkv {

WordTokenizer::WordTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {
  if (pieces_.empty()) throw std::invalid_argument("word vocabulary is empty");
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const auto& p = pieces_[i];
    const auto parts = split(p);
    if (p.find('\0') != std::string::npos || parts.size() != 1)
      throw std::invalid_argument("word vocabulary: token " + std::to_string(i) +
                                  " is not one word (with the spaces before it), one newline or "
                                  "one run of spaces");
    if (!ids_.emplace(p, static_cast<TokenId>(i)).second)
      throw std::invalid_argument("word vocabulary repeats '" + p + "'");
  }
}

std::vector<std::string_view> WordTokenizer::split(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    if (text[i] == '\n') {
      out.push_back(text.substr(i++, 1));
      continue;
    }
    while (i < text.size() && text[i] == ' ') ++i;  // the spaces before a word belong to it
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    out.push_back(text.substr(start, i - start));
  }
  return out;
}

void WordTokenizer::VocabularyBuilder::add(std::string_view text) {
  for (auto piece : split(text)) seen_.emplace(piece);
}

WordTokenizer WordTokenizer::VocabularyBuilder::build() const {
  return WordTokenizer(std::vector<std::string>(seen_.begin(), seen_.end()));
}

std::vector<TokenId> WordTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids;
  size_t at = 0;
  for (auto piece : split(text)) {
    auto it = ids_.find(std::string(piece));
    if (it == ids_.end())
      throw std::invalid_argument("'" + std::string(piece) + "' at byte " + std::to_string(at) +
                                  " is not in the word vocabulary");
    ids.push_back(it->second);
    at += piece.size();
  }
  return ids;
}

std::string WordTokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string out;
  for (TokenId id : ids) out += piece(id);
  return out;
}

std::string WordTokenizer::piece(TokenId id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("token id " + std::to_string(id) + " outside the word vocabulary of " +
                            std::to_string(vocab_size()));
  return pieces_[static_cast<size_t>(id)];
}

std::string WordTokenizer::serialize() const {
  std::string out;
  for (const auto& p : pieces_) out += p + '\0';
  return out;
}

WordTokenizer WordTokenizer::deserialize(const std::string& bytes) {
  std::vector<std::string> pieces;
  size_t start = 0;
  for (size_t end; (end = bytes.find('\0', start)) != std::string::npos; start = end + 1)
    pieces.push_back(bytes.substr(start, end - start));
  if (start != bytes.size()) throw std::invalid_argument("word vocabulary: the last token is cut");
  return WordTokenizer(std::move(pieces));
}

}  // namespace qkv
