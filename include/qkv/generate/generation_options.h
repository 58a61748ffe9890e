#pragma once

#include <cstdint>
#include <string>
#include <vector>

// What a generation is asked to do, as plain data (no LibTorch): the command line, the server's
// request parser and its fuzz target fill these in; TokenSampler and TextGenerator carry them out.
namespace qkv {

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = no top-k filter
  double top_p = 1.0;        // 1 = no nucleus filter
  uint64_t seed = 1337;

  // Throws std::invalid_argument naming the option and the accepted range.
  void validate() const;
};

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

}  // namespace qkv
