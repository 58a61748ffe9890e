#include "qkv/serve/completion_request.h"

#include <random>

#include "qkv/serve/request_error.h"
#include "request_fields.h"

namespace qkv {

namespace {

using nlohmann::json;

using namespace request;

std::string prompt_of(const json& body) {
  const json* v = field(body, "prompt");
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_array() && v->size() == 1 && (*v)[0].is_string()) return (*v)[0].get<std::string>();
  if (v->is_array() && v->size() > 1)
    bad("prompt: one prompt per request is served, got " + std::to_string(v->size()));
  bad(std::string("prompt must be a string, got ") + v->type_name());
}

std::vector<std::string> stop_of(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > 4) bad("stop takes at most 4 strings, got " + std::to_string(v->size()));
    for (const auto& s : *v) {
      if (!s.is_string()) bad(std::string("stop must hold strings, got ") + s.type_name());
      out.push_back(s.get<std::string>());
    }
  } else {
    bad(std::string("stop must be a string or an array of strings, got ") + v->type_name());
  }
  for (const auto& s : out)
    if (s.empty()) bad("stop strings must not be empty");
  return out;
}

// What OpenAI's API offers and qkv does not: refused when asked for, accepted at the default.
void refuse_unsupported(const json& body) {
  if (integer(body, "n", 1) != 1) bad("n: one completion per request is served; n must be 1");
  if (integer(body, "best_of", 1) != 1) bad("best_of must be 1");
  if (boolean(body, "echo", false)) bad("echo is not supported; it must be false");
  if (field(body, "logprobs")) bad("logprobs is not supported; leave it out");
  if (field(body, "suffix") && !(body["suffix"].is_string() && body["suffix"].empty()))
    bad("suffix is not supported; leave it out");
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (number(body, key, 0.0) != 0.0) bad(std::string(key) + " is not supported; it must be 0");
  if (field(body, "logit_bias") && !body["logit_bias"].empty())
    bad("logit_bias is not supported; leave it out");
}

}  // namespace

json parse_json_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // a syntax error, or a number beyond a double (1e999)
    bad("the body is not JSON: " + std::string(e.what()));
  }
  if (!j.is_object()) bad(std::string("the body must be a JSON object, got ") + j.type_name());
  return j;
}

CompletionRequest CompletionRequest::parse(const json& body, int64_t max_tokens_cap) {
  CompletionRequest r;
  r.model = text(body, "model", "");
  r.prompt = prompt_of(body);
  r.max_tokens = integer(body, "max_tokens", r.max_tokens);
  if (r.max_tokens < 1 || r.max_tokens > max_tokens_cap)
    bad("max_tokens must be between 1 and " + std::to_string(max_tokens_cap) +
        " (the server's limit), got " + std::to_string(r.max_tokens));
  r.sampling.temperature = number(body, "temperature", 1.0);
  if (!(r.sampling.temperature >= 0.0 && r.sampling.temperature <= 2.0))
    bad("temperature must be between 0 and 2, got " + std::to_string(r.sampling.temperature));
  r.sampling.top_p = number(body, "top_p", 1.0);
  if (!(r.sampling.top_p > 0.0 && r.sampling.top_p <= 1.0))
    bad("top_p must be in (0, 1], got " + std::to_string(r.sampling.top_p));
  r.sampling.top_k = integer(body, "top_k", 0);
  if (r.sampling.top_k < 0) bad("top_k must be 0 (off) or positive");
  if (field(body, "seed")) {
    const int64_t seed = integer(body, "seed", 0);
    if (seed < 0) bad("seed must not be negative, got " + std::to_string(seed));
    r.sampling.seed = static_cast<uint64_t>(seed);
    r.seeded = true;
  } else {
    r.sampling.seed = std::random_device{}();
  }
  r.stop = stop_of(body);
  r.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object())
      bad(std::string("stream_options must be an object, got ") + so->type_name());
    r.include_usage = boolean(*so, "include_usage", false);
  }
  refuse_unsupported(body);
  return r;
}

GenerationOptions CompletionRequest::generation_options() const {
  GenerationOptions o;
  o.max_new_tokens = max_tokens;
  o.sampling = sampling;
  o.stop = stop;
  return o;
}

json usage_json(const CompletionUsage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                      const std::string& text, const std::string& finish_reason) {
  return {{"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", model},
          {"choices",
           {{{"text", text},
             {"index", 0},
             {"logprobs", nullptr},
             {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}}}}};
}

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::string& text, const std::string& finish_reason,
                         const CompletionUsage& usage) {
  json j = completion_chunk(id, created, model, text, finish_reason);
  j["usage"] = usage_json(usage);
  return j;
}

}  // namespace qkv
