#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "qkv/model/kv_cache.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/captured_graph.h"

namespace qkv {

// One decoding step beside the model, shaped for a CUDA graph: each of B sequences gets one new
// token at the same position, its keys and values are written into the KV caches in place, and
// its attention runs over all block_size cached positions with those after the new one masked
// out. The position is a tensor on the device and nothing depends on its value on the host, so
// the step is captured once (CapturedGraph) and replayed for every token: on a GPU a token costs
// one launch instead of ~100. The model's own modules do everything but the attention core,
// which is the lecture's softmax(q K^T / sqrt(d_k)) V over the cache; tests check the logits
// against TransformerLM::forward with a KVCache. For inference, with the model in eval mode; the
// model's weights are read in place, so later changes to them are seen.
class DecodeStep {
 public:
  // `caches`: one per layer, already holding the prompt (forward with a KVCache fills them);
  // their buffers must stay in place while this step is used (KVCache::reset keeps them).
  DecodeStep(TransformerLM model, std::vector<KVCache>& caches);
  ~DecodeStep();

  // Feeds `tokens` ((B, 1) int64, anywhere) at position caches[0].length(), advances the caches
  // and returns the logits for the next token: (B, V) float32 on the model's device, in a buffer
  // that the next run() overwrites.
  torch::Tensor run(const torch::Tensor& tokens);
  bool replaying() const { return graph_->replaying(); }

 private:
  void body();

  TransformerLM model_;
  std::vector<KVCache>& caches_;
  torch::Tensor tokens_;     // (B, 1) int64: the step's input, in place
  torch::Tensor position_;   // () int64: where the new token goes
  torch::Tensor positions_;  // (block_size) int64: 0, 1, ..., for the mask
  torch::Tensor logits_;     // (B, V) float32: the step's output, in place
  std::unique_ptr<CapturedGraph> graph_;
};

}  // namespace qkv
