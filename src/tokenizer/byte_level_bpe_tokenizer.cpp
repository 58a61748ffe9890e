#include "qkv/tokenizer/byte_level_bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "qkv/io/file_bytes.h"

namespace qkv {

namespace fs = std::filesystem;

namespace {

// GPT-2's pre-tokenizer (OpenAI's encoder.py, Hugging Face's ByteLevel): contractions, an
// optional space and a run of letters, of numbers, or of other symbols, then whitespace (the
// last space of a run goes with the word after it).
constexpr const char* kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// The code points of a UTF-8 string (the vocabulary's symbols are valid UTF-8: nlohmann checks).
std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

// Code point -> byte: the inverse of byte_symbols().
int byte_of(uint32_t cp) {
  static const std::vector<int> table = [] {
    std::vector<int> t(512, -1);
    const auto& symbols = ByteLevelBpeTokenizer::byte_symbols();
    for (int b = 0; b < 256; ++b) t[code_points(symbols[b])[0]] = b;
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

}  // namespace

struct ByteLevelBpeTokenizer::Pattern {
  pcre2_code* code = nullptr;
  ~Pattern() { pcre2_code_free(code); }
};

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(ByteLevelBpeTokenizer&&) noexcept = default;
ByteLevelBpeTokenizer::~ByteLevelBpeTokenizer() = default;

const std::vector<std::string>& ByteLevelBpeTokenizer::byte_symbols() {
  static const std::vector<std::string> symbols = [] {
    std::vector<std::string> s(256);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      s[b] = utf8(printable ? uint32_t(b) : uint32_t(256 + n++));
    }
    return s;
  }();
  return symbols;
}

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::from_files(const std::string& vocab_json,
                                                        const std::string& merges_txt,
                                                        const std::string& source) {
  auto bad = [&](const std::string& what) { return std::invalid_argument(source + ": " + what); };
  ByteLevelBpeTokenizer t;
  t.vocab_json_ = vocab_json;
  t.merges_txt_ = merges_txt;
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_json);
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("vocab.json is not JSON: ") + e.what());
  }
  if (!vocab.is_object() || vocab.empty()) throw bad("vocab.json must be an object of token -> id");
  t.pieces_.resize(vocab.size());
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [symbol, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(vocab.size()) || seen[id.get<size_t>()] ||
        symbol.empty())
      throw bad("vocab.json: the ids must be 0.." + std::to_string(vocab.size() - 1) +
                ", each once, for non-empty tokens; '" + symbol + "' has " + id.dump());
    seen[id.get<size_t>()] = true;
    t.pieces_[id.get<size_t>()] = symbol;
    t.ids_[symbol] = id.get<TokenId>();
    if (symbol.size() > 4 && symbol.rfind("<|", 0) == 0 && symbol.substr(symbol.size() - 2) == "|>")
      t.specials_.emplace_back(symbol, id.get<TokenId>());
  }
  for (const auto& s : byte_symbols())
    if (!t.ids_.count(s)) throw bad("vocab.json has no id for the byte symbol '" + s + "'");
  std::sort(t.specials_.begin(), t.specials_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

  size_t line_no = 0, start = 0;
  int rank = 0;
  while (start < merges_txt.size()) {
    size_t end = merges_txt.find('\n', start);
    if (end == std::string::npos) end = merges_txt.size();
    std::string line = merges_txt.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos)
      throw bad("merges.txt line " + std::to_string(line_no) + ": expected two symbols, got '" +
                line + "'");
    if (!t.ids_.count(line.substr(0, space) + line.substr(space + 1)))
      throw bad("merges.txt line " + std::to_string(line_no) + ": '" + line +
                "' makes a symbol vocab.json has no id for");
    t.ranks_.emplace(line, rank++);
  }

  int error = 0;
  PCRE2_SIZE offset = 0;
  t.pattern_ = std::make_unique<Pattern>();
  t.pattern_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!t.pattern_->code) throw std::logic_error("the GPT-2 pattern does not compile in PCRE2");
  pcre2_jit_compile(t.pattern_->code, PCRE2_JIT_COMPLETE);  // faster where JIT exists; optional
  return t;
}

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::from_directory(const std::string& dir) {
  const fs::path d(dir);
  if (fs::is_regular_file(d / "vocab.json") && fs::is_regular_file(d / "merges.txt"))
    return from_files(read_file_bytes((d / "vocab.json").string()),
                      read_file_bytes((d / "merges.txt").string()), dir);
  if (!fs::is_regular_file(d / "tokenizer.json"))
    throw std::invalid_argument(dir +
                                ": expected GPT-2's tokenizer files, vocab.json and "
                                "merges.txt, or tokenizer.json");
  const std::string where = (d / "tokenizer.json").string();
  nlohmann::json model;
  try {
    model = nlohmann::json::parse(read_file_bytes(where)).at("model");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(where + ": expected a tokenizer with a \"model\": " + e.what());
  }
  if (model.value("type", "") != "BPE" || !model.contains("vocab") || !model.contains("merges"))
    throw std::invalid_argument(where + ": expected a BPE model with vocab and merges");
  // Merges are "a b" strings, or [a, b] pairs in newer files.
  std::string merges;
  for (const auto& m : model["merges"]) {
    if (m.is_string()) {
      merges += m.get<std::string>() + "\n";
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges += m[0].get<std::string>() + " " + m[1].get<std::string>() + "\n";
    } else {
      throw std::invalid_argument(where + ": a merge is neither \"a b\" nor [a, b]: " + m.dump());
    }
  }
  return from_files(model["vocab"].dump(), merges, where);
}

SpecialIds ByteLevelBpeTokenizer::special_ids() const {
  SpecialIds s;
  if (auto it = ids_.find("<|endoftext|>"); it != ids_.end()) s.bos = s.eos = it->second;
  return s;
}

// One pre-token: its bytes as symbols, then the lowest-ranked adjacent pair merged everywhere,
// again and again (GPT-2's encoder.py).
void ByteLevelBpeTokenizer::encode_pretoken(std::string_view bytes,
                                            std::vector<TokenId>& out) const {
  const auto& table = byte_symbols();
  std::vector<std::string> symbols;
  for (unsigned char b : bytes) symbols.push_back(table[b]);
  while (symbols.size() > 1) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks_.find(symbols[i] + ' ' + symbols[i + 1]);
      if (it != ranks_.end() && it->second < best) best = it->second, at = i;
    }
    if (best == INT_MAX) break;
    const std::string left = symbols[at], right = symbols[at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        i += 2;
      } else {
        merged.push_back(std::move(symbols[i++]));
      }
    }
    symbols = std::move(merged);
  }
  for (const auto& s : symbols) out.push_back(ids_.at(s));  // merges were checked at load
}

std::vector<TokenId> ByteLevelBpeTokenizer::encode(std::string_view text) const {
  std::vector<TokenId> out;
  auto* match = pcre2_match_data_create_from_pattern(pattern_->code, nullptr);
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> guard(match,
                                                                            pcre2_match_data_free);
  // The text between special tokens, cut by the pattern.
  auto plain = [&](size_t begin, size_t end) {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    uint32_t options = 0;
    for (size_t at = begin; at < end;) {
      const int rc = pcre2_match(pattern_->code, subject, end, at, options, match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)
        throw std::invalid_argument("not UTF-8 at byte " +
                                    std::to_string(pcre2_get_startchar(match)));
      options = PCRE2_NO_UTF_CHECK;  // the subject was checked whole on the first call
      const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match);
      if (span[1] == span[0]) break;
      encode_pretoken(text.substr(span[0], span[1] - span[0]), out);
      at = span[1];
    }
  };
  size_t begin = 0;
  for (size_t at = text.find("<|"); at != std::string_view::npos; at = text.find("<|", at + 1)) {
    for (const auto& [special, id] : specials_) {
      if (text.compare(at, special.size(), special) != 0) continue;
      plain(begin, at);
      out.push_back(id);
      begin = at + special.size();
      at = begin - 1;
      break;
    }
  }
  plain(begin, text.size());
  return out;
}

std::string ByteLevelBpeTokenizer::piece(TokenId id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary of " +
                            std::to_string(vocab_size()));
  std::string out;
  for (uint32_t cp : code_points(pieces_[static_cast<size_t>(id)])) {
    const int b = byte_of(cp);
    if (b >= 0) {
      out += char(b);
    } else {
      out += utf8(cp);  // not from the byte table (a hand-added entry): its own text
    }
  }
  return out;
}

std::string ByteLevelBpeTokenizer::decode(const std::vector<TokenId>& ids) const {
  std::string out;
  for (TokenId id : ids) out += piece(id);
  return out;
}

std::string ByteLevelBpeTokenizer::serialize() const {
  return std::to_string(vocab_json_.size()) + '\n' + vocab_json_ + merges_txt_;
}

ByteLevelBpeTokenizer ByteLevelBpeTokenizer::deserialize(const std::string& bytes) {
  const size_t newline = bytes.find('\n');
  size_t length = 0;
  try {
    length = newline == std::string::npos ? SIZE_MAX : std::stoul(bytes.substr(0, newline));
  } catch (const std::exception&) {
    length = SIZE_MAX;
  }
  if (length == SIZE_MAX || length > bytes.size() - newline - 1)
    throw std::invalid_argument(
        "bpe tokenizer: expected vocab.json's length, a newline, "
        "vocab.json and merges.txt");
  return from_files(bytes.substr(newline + 1, length), bytes.substr(newline + 1 + length),
                    "bpe tokenizer");
}

}  // namespace qkv
