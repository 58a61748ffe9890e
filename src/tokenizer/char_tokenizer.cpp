#include "qkv/tokenizer/char_tokenizer.h"

#include <cstdio>
#include <stdexcept>

namespace qkv {

namespace {
std::string describe(uint32_t cp) {
  char code[16];
  std::snprintf(code, sizeof code, "U+%04X", cp);
  std::string shown = cp == '\n' ? "\\n" : cp == '\t' ? "\\t" : cp < 32 ? "" : encode_utf8(cp);
  return "'" + shown + "' (" + code + ")";
}
}  // namespace

uint32_t next_code_point(std::string_view s, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  size_t i = *pos;
  unsigned char c = byte(i);
  int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
  if (extra < 0 || i + extra >= s.size())
    throw std::invalid_argument("malformed UTF-8 at byte " + std::to_string(i));
  uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80)
      throw std::invalid_argument("malformed UTF-8 at byte " + std::to_string(i));
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  // One spelling per character: overlong forms (C1 85 for 'E'), UTF-16 surrogates and code
  // points past U+10FFFF are not UTF-8 (found by fuzz/tokenizer_fuzz.cpp).
  static constexpr uint32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
    throw std::invalid_argument("malformed UTF-8 at byte " + std::to_string(i));
  *pos = i + extra + 1;
  return cp;
}

std::string encode_utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

CharTokenizer::CharTokenizer(const std::string& characters) {
  size_t pos = 0;
  while (pos < characters.size()) {
    uint32_t cp = next_code_point(characters, &pos);
    if (ids_.count(cp)) throw std::invalid_argument("char vocabulary repeats " + describe(cp));
    auto id = static_cast<TokenId>(chars_.size());
    ids_[cp] = id;
    if (cp < 128) ascii_[cp] = id;
    chars_.push_back(encode_utf8(cp));
  }
  if (chars_.empty()) throw std::invalid_argument("char vocabulary is empty");
}

void CharTokenizer::VocabularyBuilder::add(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) seen_[next_code_point(text, &pos)] = true;
}

CharTokenizer CharTokenizer::VocabularyBuilder::build() const {
  std::string chars;
  for (uint32_t cp = 0; cp < seen_.size(); ++cp)
    if (seen_[cp]) chars += encode_utf8(cp);
  return CharTokenizer(chars);
}

std::vector<TokenId> CharTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    auto c = static_cast<unsigned char>(text[pos]);
    TokenId id;
    if (c < 128) {
      id = ascii_[c];
      if (id < 0)
        throw std::invalid_argument("character " + describe(c) + " at position " +
                                    std::to_string(out.size()) +
                                    " is not in the tokenizer's vocabulary");
      ++pos;
    } else {
      uint32_t cp = next_code_point(text, &pos);
      auto it = ids_.find(cp);
      if (it == ids_.end())
        throw std::invalid_argument("character " + describe(cp) + " at position " +
                                    std::to_string(out.size()) +
                                    " is not in the tokenizer's vocabulary");
      id = it->second;
    }
    out.push_back(id);
  }
  return out;
}

std::string CharTokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (TokenId id : ids) out += piece(id);
  return out;
}

std::string CharTokenizer::piece(TokenId id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocabulary of " +
                            std::to_string(vocab_size()));
  return chars_[id];
}

std::string CharTokenizer::serialize() const {
  std::string out;
  for (const auto& c : chars_) out += c;
  return out;
}

}  // namespace qkv
