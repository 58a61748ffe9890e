#include "qkv/inspect/contextual_embeddings.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include "qkv/inspect/attention_probe.h"
#include "qkv/runtime/invalid_option.h"

namespace qkv {

namespace {

bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || u >= 0x80 || c == '_';  // bytes >= 0x80: letters of other scripts
}

// Byte offsets of `word` in `text` as a whole word (not inside a longer word).
std::vector<size_t> find_whole_word(const std::string& text, const std::string& word) {
  std::vector<size_t> found;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !is_word_byte(text[at - 1]) || !is_word_byte(word.front());
    const size_t end = at + word.size();
    const bool ends = end == text.size() || !is_word_byte(text[end]) || !is_word_byte(word.back());
    if (starts && ends) found.push_back(at);
  }
  return found;
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

}  // namespace

WordOccurrence locate_word(const Tokenizer& tokenizer, const std::vector<TokenId>& ids,
                           const std::string& text, size_t s, const std::string& word,
                           const std::string& what) {
  const auto starts = find_whole_word(text, word);
  if (starts.empty())
    throw InvalidOption("word", quoted(word) + " does not occur as a word in " + what);
  // Each token's end byte, from decoding growing prefixes: exact for both tokenizers, since
  // they reproduce text byte for byte.
  std::vector<size_t> token_end(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    token_end[i] = tokenizer.decode(std::vector<TokenId>(ids.begin(), ids.begin() + i + 1)).size();

  WordOccurrence occ;
  occ.sentence = s;
  occ.text = text;
  occ.byte_offset = starts.front();
  occ.occurrences_in_sentence = static_cast<int>(starts.size());
  const size_t word_end = occ.byte_offset + word.size();
  occ.position = -1;
  for (size_t i = 0; i < ids.size(); ++i) {
    const size_t begin = i == 0 ? 0 : token_end[i - 1];
    if (token_end[i] > occ.byte_offset && begin < word_end) {
      occ.pieces.push_back(tokenizer.piece(ids[i]));
      occ.position = static_cast<int64_t>(i);  // the last covering token wins
    }
  }
  if (occ.position < 0)
    throw InvalidOption("word", quoted(word) + ": no token covers it in " + what);
  occ.piece = tokenizer.piece(ids[static_cast<size_t>(occ.position)]);
  return occ;
}

namespace {

// Per layer, the `top_k` keys position `p` attends to most, heads averaged.
std::vector<std::vector<AttendedToken>> top_attended(const Inspection& capture, int64_t p,
                                                     const Tokenizer& tokenizer,
                                                     const std::vector<TokenId>& ids, int top_k) {
  std::vector<std::vector<AttendedToken>> per_layer;
  for (auto& w : capture.attention_weights) {
    auto row = w[0].mean(0)[p].to(torch::kCPU, torch::kFloat64);  // (T): heads averaged
    const int64_t k = std::min<int64_t>(top_k, p + 1);            // keys it may see
    auto top = row.topk(k);
    std::vector<AttendedToken> tops;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t pos = std::get<1>(top)[i].item<int64_t>();
      tops.push_back({pos, tokenizer.piece(ids[static_cast<size_t>(pos)]),
                      std::get<0>(top)[i].item<double>()});
    }
    per_layer.push_back(std::move(tops));
  }
  return per_layer;
}

}  // namespace

double cosine_in_float64(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.to(torch::kCPU, torch::kFloat64).flatten();
  auto y = b.to(torch::kCPU, torch::kFloat64).flatten();
  const double denom = (x.norm() * y.norm()).item<double>();
  return denom > 0 ? (x.dot(y)).item<double>() / denom : 0.0;
}

ContextualEmbeddingComparison compare_contextual_embeddings(
    TransformerLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& sentences,
    const std::string& word, int top_k) {
  if (sentences.size() < 2)
    throw std::invalid_argument("at least two sentences are needed to compare, got " +
                                std::to_string(sentences.size()));
  if (word.empty()) throw InvalidOption("word", "is empty");

  ContextualEmbeddingComparison out;
  out.word = word;
  out.levels = {"static", "+ positions"};
  for (int64_t l = 0; l < model->config().n_layer; ++l)
    out.levels.push_back("layer " + std::to_string(l + 1));

  std::vector<std::vector<torch::Tensor>> vectors;  // [sentence][level]: (C)
  for (size_t s = 0; s < sentences.size(); ++s) {
    const std::string& text = sentences[s];
    const std::string what = "sentence " + std::to_string(s + 1) + " (" + quoted(text) + ")";
    const auto ids = encode_for_inspection(tokenizer, text, model->config().block_size, what);
    auto occ = locate_word(tokenizer, ids, text, s, word, what);
    const auto capture = run_for_inspection(model, ids);
    const int64_t p = occ.position;
    std::vector<torch::Tensor> levels = {capture.token_embeddings[0][p],
                                         capture.input_embeddings[0][p]};
    for (auto& h : capture.hidden_states) levels.push_back(h[0][p]);
    vectors.push_back(std::move(levels));
    out.top_attended.push_back(top_attended(capture, p, tokenizer, ids, top_k));
    out.occurrences.push_back(std::move(occ));
  }

  for (size_t i = 0; i < sentences.size(); ++i)
    for (size_t j = i + 1; j < sentences.size(); ++j) {
      out.pairs.emplace_back(i, j);
      std::vector<double> row, update_row;
      for (size_t l = 0; l < out.levels.size(); ++l) {
        row.push_back(cosine_in_float64(vectors[i][l], vectors[j][l]));
        update_row.push_back(l < 2 ? std::nan("")
                                   : cosine_in_float64(vectors[i][l] - vectors[i][1],
                                                       vectors[j][l] - vectors[j][1]));
      }
      out.cosine.push_back(std::move(row));
      out.update_cosine.push_back(std::move(update_row));
    }
  return out;
}

}  // namespace qkv
