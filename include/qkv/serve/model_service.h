#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qkv/serve/completion_request.h"
#include "qkv/serve/compute_thread.h"
#include "qkv/train/checkpoint.h"

namespace qkv {

// What a finished completion returns besides the text it streamed.
struct CompletionOutcome {
  std::string text;
  std::string finish_reason;  // "stop" (a stop string) or "length" (max_tokens)
  CompletionUsage usage;
};

// One run's model behind the server: its checkpoints (best.pt, last.pt, the kept step_N.pt) loaded
// on first use, and every question the explorer page and the API ask of them. Every call runs on
// one ComputeThread, so concurrent requests queue and each sees the model alone (a small model's
// request takes milliseconds; see docs/serving.md for what queueing measured). Answers are JSON;
// bad requests throw RequestError. Callable from any thread.
class ModelService {
 public:
  // `source`: a run directory, a checkpoint file, or a safetensors export directory.
  explicit ModelService(const std::string& source);

  const std::string& model_id() const { return model_id_; }  // the run directory's name
  // The checkpoints a request may name, oldest step first ("" names the default one).
  std::vector<std::string> checkpoint_names() const { return names_; }

  // {model, example, checkpoints, default, step, config: {...}, tokenizer}; example is a text
  // the tokenizer encodes (the model's greedy continuation of its start token)
  nlohmann::json info();
  // {tokens, token_ids, n_layer, n_head, weights [L][H][T][T], checkpoint, step}
  nlohmann::json attention(const std::string& text, const std::string& checkpoint);
  // One attention row by the lecture's formula, with this model's numbers: layer, head and query
  // position; q, each key's k and v, q.k, the scaled scores, the softmax, the output.
  nlohmann::json explain(const std::string& text, const std::string& checkpoint, int64_t layer,
                         int64_t head, int64_t query);
  // The next-token distribution after `text`: the `top` most likely at `temperature`.
  nlohmann::json next_tokens(const std::string& text, const std::string& checkpoint,
                             double temperature, int64_t top);
  // The word's vectors across the sentences: cosines per level and pair; with sense labels (two
  // or more senses, each at least twice) also the separation per level and its 2-D picture.
  nlohmann::json embed(const std::vector<std::string>& senses,
                       const std::vector<std::string>& sentences, const std::string& word,
                       const std::string& checkpoint);

  // The ids a completion's `model` may take: the run's name (its default checkpoint), and
  // NAME:CHECKPOINT for each checkpoint.
  std::vector<std::string> model_ids();

  // What complete() refuses before it starts (an unknown model, a prompt the tokenizer cannot
  // encode or longer than the context), as a RequestError: checked before a stream's 200.
  void check(const CompletionRequest& request);

  // Generates, sending each piece of text to `on_text` as it is certain (which may throw to stop
  // early). A prompt longer than the context is refused (400).
  CompletionOutcome complete(const CompletionRequest& request,
                             const std::function<void(const std::string&)>& on_text = {});

 private:
  Checkpoint& checkpoint(const std::string& name);  // loads on first use; on compute_
  std::string checkpoint_of_model(const std::string& model) const;  // throws 404
  std::vector<TokenId> encode(const Checkpoint& ckpt, const std::string& text,
                              const std::string& what) const;

  std::string run_dir_;      // "" when serving one file
  std::string single_file_;  // the file when serving one
  std::string model_id_;
  std::vector<std::string> names_;
  std::string default_name_;
  std::map<std::string, Checkpoint> loaded_;
  ComputeThread compute_;  // last: destroyed first, while what its jobs use still exists
};

}  // namespace qkv
