#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qkv/generate/generation_options.h"

namespace qkv {

// A POST /v1/completions body in OpenAI's shape, checked field by field. Fields qkv cannot honour
// (n > 1, echo, logprobs, suffix, best_of > 1) are refused rather than ignored, so a client never
// gets an answer to a question it did not ask.
struct CompletionRequest {
  std::string model;  // optional; any value names the one model served
  std::string prompt;
  int64_t max_tokens = 16;  // OpenAI's default
  SamplingOptions sampling;
  bool seeded = false;  // whether the request gave a seed (else one is drawn per request)
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the counts

  // Throws RequestError (400) naming the field and what was expected. `max_tokens_cap` is the
  // server's limit on max_tokens.
  static CompletionRequest parse(const nlohmann::json& body, int64_t max_tokens_cap);

  GenerationOptions generation_options() const;
};

// A body that is JSON: throws RequestError (400) with the parser's position otherwise, or when
// the body is not a JSON object.
nlohmann::json parse_json_body(const std::string& body);

// The shapes OpenAI's clients read: a whole completion, one streamed chunk, the model list.
struct CompletionUsage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason,
                                   const CompletionUsage& usage);
// finish_reason "" is sent as null (a chunk in the middle of the stream).
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text, const std::string& finish_reason);
nlohmann::json usage_json(const CompletionUsage& usage);

}  // namespace qkv
