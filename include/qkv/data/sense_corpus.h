#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

// One sense of an ambiguous word: the words before it that signal the sense (some held out of
// the sentences that hold the ambiguous word, for testing) and what comes after it.
struct WordSense {
  std::string name;                        // "money"
  std::vector<std::string> contexts;       // "cash", ...: before the word, in training
  std::vector<std::string> held_out;       // "savings", ...: before the word only in the probe
  std::vector<std::string> continuations;  // "pays interest", ...: after the word
};

struct AmbiguousWord {
  std::string word;  // "bank"
  std::vector<WordSense> senses;
};

// The lecture's ambiguous words: bank (money, river), apple (fruit, company), bat (animal,
// sport), crane (bird, machine), spring (season, coil).
const std::vector<AmbiguousWord>& lecture_ambiguous_words();

// A corpus made for the lesson that self-attention makes a word's vector depend on its context.
// Every line is "DET CONTEXT WORD CONTINUATION ." with the ambiguous word always third:
//  - half the lines hold an ambiguous word after a context word of one of its senses, followed
//    by a continuation of that sense: to predict what follows the word, a causal model must
//    carry the sense, read from the word before it, in the word's own vector;
//  - the other half teach every context word, the held-out ones too, with no ambiguous word:
//    "DET CONTEXT CONTINUATION .", so a held-out word's sense is learnable without ever being
//    seen before the ambiguous word.
// The probe holds, for each ambiguous word, sense and held-out context word, one line
// "WORD<TAB>SENSE<TAB>SENTENCE" per determiner: sentences the model never saw, with the word at
// the same position in all (so position cannot tell them apart).
struct SenseCorpus {
  std::string corpus;  // `lines` lines
  std::string probe;
};
SenseCorpus make_sense_corpus(uint64_t seed, int64_t lines = 20000);

// Writes make_sense_corpus(seed) to `corpus_path`, and its probe beside it
// (sense_probe_path(corpus_path)), atomically, unless the corpus exists already.
void write_sense_corpus_if_missing(const std::string& corpus_path, uint64_t seed);
std::string sense_probe_path(const std::string& corpus_path);

}  // namespace qkv
