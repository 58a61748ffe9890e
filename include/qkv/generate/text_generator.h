#pragma once

#include <functional>
#include <string>
#include <vector>

#include "qkv/generate/token_sampler.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

struct GenerationOptions {
  int64_t max_new_tokens = 500;
  SamplingOptions sampling;
  std::vector<std::string> stop;  // generation ends at the first of these (not emitted)
  bool use_kv_cache = true;
  // Past the context: keep the newest `context_keep` of it and go on (0 < x < 1: the model sees
  // between that part and all of the context, fast), or 1: slide one token at a time and
  // recompute the window at every token (the model always sees a full context, slow). See
  // IncrementalDecoder.
  double context_keep = 0.5;

  void validate() const;  // throws std::invalid_argument naming the option
};

struct GenerationResult {
  std::string text;             // the generated text (prompt excluded, stop string excluded)
  std::vector<TokenId> tokens;  // the generated ids
  double seconds = 0;           // time spent generating (prompt processing included)
  bool stopped = false;         // a stop string ended it
};

// Prompt -> text, streamed: `on_text` receives each new piece of text as soon as it is certain
// (text that might still become a stop string is held back until it cannot).
class TextGenerator {
 public:
  TextGenerator(TransformerLM model, const Tokenizer& tokenizer);

  // An empty prompt starts from the tokenizer's start id (BOS, else newline, else 0). A prompt
  // longer than the context keeps its last block_size tokens.
  GenerationResult generate(const std::vector<TokenId>& prompt, const GenerationOptions& options,
                            const std::function<void(const std::string&)>& on_text = {});

 private:
  TransformerLM model_;
  const Tokenizer& tokenizer_;
};

}  // namespace qkv
