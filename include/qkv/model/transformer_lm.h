#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/dropout.h"
#include "qkv/model/kv_cache.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/model_config.h"
#include "qkv/model/multi_head_self_attention.h"
#include "qkv/model/sinusoidal_positional_encoding.h"
#include "qkv/model/token_embedding.h"
#include "qkv/model/transformer_block.h"

namespace qkv {

// What a forward pass computes on the way to the logits: what inspection reads.
struct Inspection {
  torch::Tensor logits;                          // (B, T, vocab)
  torch::Tensor token_embeddings;                // (B, T, C): static, context-free
  torch::Tensor input_embeddings;                // (B, T, C): tokens + positions
  std::vector<torch::Tensor> hidden_states;      // per layer: (B, T, C) after that block
  std::vector<torch::Tensor> attention_weights;  // per layer: (B, H, T, T)
};

// A decoder-only transformer language model: embeddings, N blocks, final norm, LM head.
class TransformerLMImpl : public torch::nn::Module {
 public:
  explicit TransformerLMImpl(const ModelConfig& config);

  // idx: (B, T) int64 token ids -> logits (B, T, vocab). With `caches` (one per layer, created
  // at block_size positions when the vector is empty), idx holds only the new tokens and
  // positions continue from the cached length.
  torch::Tensor forward(const torch::Tensor& idx, std::vector<KVCache>* caches = nullptr);

  // The same logits and what led to them, the attention always by the explicit formula.
  Inspection inspect(const torch::Tensor& idx);

  // Mean next-token cross-entropy: logits (B, T, V), targets (B, T).
  static torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets);

  // The LM head's weight: the token embedding itself when weights are tied.
  torch::Tensor lm_head_weight() const;

  const ModelConfig& config() const { return config_; }

  TokenEmbedding tok_emb{nullptr};
  SinusoidalPositionalEncoding pos_enc{nullptr};  // when positional_encoding is sinusoidal
  torch::nn::Embedding pos_emb{nullptr};          // when it is learned
  Dropout drop{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  LayerNorm ln_f{nullptr};
  torch::Tensor lm_head;  // (vocab, C); undefined when tied

 private:
  void init_weights();
  int64_t check_input(const torch::Tensor& idx, std::vector<KVCache>* caches);  // -> past
  torch::Tensor positions(int64_t T, int64_t past, const torch::Tensor& idx);   // (T, C)
  ModelConfig config_;
};
TORCH_MODULE(TransformerLM);

}  // namespace qkv
