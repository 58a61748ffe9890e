#pragma once

#include <functional>
#include <string>
#include <vector>

#include "qkv/generate/generation_options.h"
#include "qkv/generate/token_sampler.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

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
