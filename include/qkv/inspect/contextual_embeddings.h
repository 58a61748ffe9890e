#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// Where a word sits in one sentence, in tokens.
struct WordOccurrence {
  size_t sentence = 0;              // index into the sentences given
  std::string text;                 // the sentence
  size_t byte_offset = 0;           // of the word in the sentence
  std::vector<std::string> pieces;  // the tokens that cover the word
  int64_t position = 0;             // the token used: the one holding the word's last byte
  std::string piece;                // that token's text
  int occurrences_in_sentence = 1;  // the first is used
};

// Where `word` sits in sentence `s` (`text`, encoded as `ids`), in tokens: the token holding its
// last byte (the first occurrence when it occurs more than once). Throws InvalidOption (word)
// naming `what` when the word does not occur there as a whole word.
WordOccurrence locate_word(const Tokenizer& tokenizer, const std::vector<TokenId>& ids,
                           const std::string& text, size_t s, const std::string& word,
                           const std::string& what);

// One attended key: which token a query looked at, and how much.
struct AttendedToken {
  int64_t position = 0;
  std::string piece;
  double weight = 0;
};

// The lectures' "static vs contextual embedding" made measurable: the same word's vectors in
// different sentences compared by cosine similarity at every level of the model.
struct ContextualEmbeddingComparison {
  std::string word;
  std::vector<WordOccurrence> occurrences;  // one per sentence
  // "static" (token embedding), "+ positions" (the block input), "layer 1", ... "layer N"
  // (each block's output, the residual stream).
  std::vector<std::string> levels;
  std::vector<std::pair<size_t, size_t>> pairs;  // (i, j) sentence indices, i < j
  std::vector<std::vector<double>> cosine;       // [pair][level], computed in float64
  // [pair][level]: cosine of what the blocks added, (vector at the level) - (block input).
  // The residual stream carries the static embedding to the top, so the full vectors stay
  // similar; this isolates the part context wrote. NaN for the two levels below layer 1.
  std::vector<std::vector<double>> update_cosine;
  // [occurrence][layer]: the keys the word's token attends to most, head-averaged.
  std::vector<std::vector<std::vector<AttendedToken>>> top_attended;
};

// Throws std::invalid_argument when fewer than two sentences are given, the word is empty, or a
// sentence does not contain the word as a whole word (the message names that sentence).
ContextualEmbeddingComparison compare_contextual_embeddings(
    TransformerLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& sentences,
    const std::string& word, int top_k = 3);

// Cosine similarity in float64 of two vectors of any shape and dtype.
double cosine_in_float64(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace qkv
