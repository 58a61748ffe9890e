#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"
#include "qkv/tokenizer/char_tokenizer.h"
#include "qkv/tokenizer/sentencepiece_tokenizer.h"
#include "qkv/tokenizer/word_tokenizer.h"

namespace qkv {

TokenId Tokenizer::start_id() const {
  if (special_ids().bos >= 0) return special_ids().bos;
  try {
    auto ids = encode("\n");
    if (ids.size() == 1) return ids[0];
  } catch (const std::exception&) {
    // no newline in the vocabulary: fall through to id 0
  }
  return 0;
}

std::vector<TokenId> Tokenizer::encode_from(std::string_view text,
                                            const std::string& source) const {
  try {
    return encode(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& kind, const std::string& bytes) {
  if (kind == "char") return std::make_unique<CharTokenizer>(bytes);
  if (kind == "sentencepiece") return std::make_unique<SentencePieceTokenizer>(bytes);
  if (kind == "word") return std::make_unique<WordTokenizer>(WordTokenizer::deserialize(bytes));
  if (kind == "bpe")
    return std::make_unique<ByteLevelBpeTokenizer>(ByteLevelBpeTokenizer::deserialize(bytes));
  throw std::invalid_argument("unknown tokenizer kind '" + kind +
                              "' (expected 'char', 'word', 'sentencepiece' or 'bpe')");
}

std::string tokenizer_file_bytes(const Tokenizer& tokenizer) {
  return tokenizer.kind() + '\n' + tokenizer.serialize();
}

void save_tokenizer_file(const Tokenizer& tokenizer, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << tokenizer_file_bytes(tokenizer);
  if (!out) throw std::runtime_error("cannot write tokenizer file " + path);
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read tokenizer file " + path);
  std::string kind;
  std::getline(in, kind);
  std::ostringstream rest;
  rest << in.rdbuf();
  try {
    return load_tokenizer(kind, rest.str());
  } catch (const std::exception& e) {
    throw std::invalid_argument("tokenizer file " + path + ": " + e.what());
  }
}

}  // namespace qkv
