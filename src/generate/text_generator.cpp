#include "qkv/generate/text_generator.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "qkv/generate/incremental_decoder.h"
#include "qkv/runtime/invalid_option.h"

namespace qkv {

void GenerationOptions::validate() const {
  if (max_new_tokens <= 0)
    throw InvalidOption("max_new_tokens",
                        "must be positive, got " + std::to_string(max_new_tokens));
  for (const auto& s : stop)
    if (s.empty()) throw InvalidOption("stop", "must not be empty");
  if (!(context_keep > 0.0 && context_keep <= 1.0))
    throw InvalidOption("context_keep", "must be in (0, 1], got " + std::to_string(context_keep));
  sampling.validate();
}

TextGenerator::TextGenerator(TransformerLM model, const Tokenizer& tokenizer)
    : model_(std::move(model)), tokenizer_(tokenizer) {}

GenerationResult TextGenerator::generate(const std::vector<TokenId>& prompt,
                                         const GenerationOptions& options,
                                         const std::function<void(const std::string&)>& on_text) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  std::vector<TokenId> context = prompt;
  if (context.empty()) context.push_back(tokenizer_.start_id());

  IncrementalDecoder decoder(model_, options.use_kv_cache, options.context_keep);
  TokenSampler sampler(options.sampling);
  size_t hold = 0;  // text that could be the start of a stop string stays unsent
  for (const auto& s : options.stop) hold = std::max(hold, s.size() - 1);

  GenerationResult result;
  std::vector<TokenId> generated;
  size_t sent = 0;
  auto logits = decoder.feed(context);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const TokenId next = sampler.sample(logits);
    result.tokens.push_back(next);
    generated.push_back(next);
    // Decoding the whole continuation (not token by token) keeps subword spacing and byte
    // fallback sequences right.
    result.text = tokenizer_.decode(generated);
    size_t cut = std::string::npos;
    for (const auto& s : options.stop) {
      size_t at = result.text.find(s, sent > s.size() ? sent - s.size() : 0);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
      result.text.resize(cut);
      result.stopped = true;
    }
    const size_t ready = result.stopped
                             ? result.text.size()
                             : (result.text.size() > hold ? result.text.size() - hold : 0);
    if (ready > sent) {
      if (on_text) on_text(result.text.substr(sent, ready - sent));
      sent = ready;
    }
    if (result.stopped) break;
    if (i + 1 < options.max_new_tokens) logits = decoder.feed({next});
  }
  if (on_text && sent < result.text.size()) on_text(result.text.substr(sent));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace qkv
