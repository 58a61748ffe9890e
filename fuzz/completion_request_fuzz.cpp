// A /v1/completions body on arbitrary bytes, as the server reads one from the network: a
// RequestError with status 400, or a request whose every field is within the ranges qkv serves.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qkv/serve/completion_request.h"
#include "qkv/serve/request_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kCap = 1024;
  try {
    const auto body = qkv::parse_json_body(std::string(reinterpret_cast<const char*>(data), size));
    const auto r = qkv::CompletionRequest::parse(body, kCap);
    const auto& s = r.sampling;
    if (r.max_tokens < 1 || r.max_tokens > kCap) __builtin_trap();
    if (!(s.temperature >= 0 && s.temperature <= 2) || !(s.top_p > 0 && s.top_p <= 1))
      __builtin_trap();
    if (s.top_k < 0 || r.stop.size() > 4) __builtin_trap();
    for (const auto& stop : r.stop)
      if (stop.empty()) __builtin_trap();
    if (r.generation_options().max_new_tokens != r.max_tokens) __builtin_trap();
  } catch (const qkv::RequestError& e) {
    if (e.status() != 400) __builtin_trap();
  }
  return 0;
}
