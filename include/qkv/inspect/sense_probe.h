#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "qkv/inspect/contextual_embeddings.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

// How far one word's vectors, taken in many sentences, separate by the word's sense, at one
// level of the model. Computed in float64 after removing, at each token position, the mean of
// the vectors at that position: a component every sentence shares at a position (above all the
// positional code) otherwise dominates distances and cosines.
struct SenseSeparation {
  // Mean distance between vectors of different senses over the mean distance between vectors of
  // the same sense: 1 when the sense does not show, larger the more it does.
  double distance_ratio = 0;
  // Leave-one-out nearest centroid: the share of vectors closer to their own sense's centroid
  // (computed without them) than to any other sense's.
  double nearest_centroid_accuracy = 0;
  // Mean pairwise cosine of the position-centred vectors, same sense and different senses.
  double cosine_within = 0, cosine_between = 0;
  // The same of the raw vectors, as a lone pair's cosine reads: shared components included.
  double raw_cosine_within = 0, raw_cosine_between = 0;
  torch::Tensor pca;  // (n, 2): the centred vectors on their first two principal components
};

// `vectors` (n, C), `sense` (n: 0..S-1, each sense at least twice), `position` (n) the token
// position of each vector. Throws std::invalid_argument when a sense has fewer than two vectors
// or there is only one sense.
SenseSeparation measure_sense_separation(const torch::Tensor& vectors,
                                         const std::vector<int>& sense,
                                         const std::vector<int64_t>& position);

// One probe sentence: the sense the word has in it.
struct SenseSentence {
  std::string sense;
  std::string text;
};

// The keys one sense's occurrences attend to, per layer and head: each key's piece with its
// weight averaged over that sense's sentences (keys at the same offset before the word pooled).
struct SenseAttention {
  std::string sense;
  // [layer][head]: the top keys, by mean weight
  std::vector<std::vector<std::vector<AttendedToken>>> top;
};

// The lesson measured: `word` in every sentence, its vector at every level ("static" token
// embedding, "+ positions", "layer 1".."layer N", "final norm"), and per level how far the
// senses separate.
struct SenseProbe {
  std::string word;
  std::vector<std::string> senses;  // in order of first appearance
  std::vector<int> sense_of;        // per sentence
  std::vector<WordOccurrence> occurrences;
  std::vector<std::string> levels;
  std::vector<SenseSeparation> separation;  // per level
  std::vector<SenseAttention> attention;    // per sense
  bool same_position = true;                // whether the word sits at one position throughout
};

SenseProbe probe_senses(TransformerLM& model, const Tokenizer& tokenizer,
                        const std::vector<SenseSentence>& sentences, const std::string& word,
                        int top_k = 3);

// Reads a probe file: lines "SENSE<TAB>SENTENCE", or "WORD<TAB>SENSE<TAB>SENTENCE" of which
// those for `word` are kept (make_sense_corpus's probe). Throws std::invalid_argument naming the
// file and line of a line of neither form, or when no line is left.
std::vector<SenseSentence> read_sense_sentences(const std::string& path, const std::string& word);

}  // namespace qkv
