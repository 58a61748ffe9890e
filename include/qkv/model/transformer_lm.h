#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "qkv/model/kv_cache.h"
#include "qkv/model/layer_norm.h"
#include "qkv/model/model_config.h"
#include "qkv/model/multi_head_self_attention.h"
#include "qkv/model/sinusoidal_positional_encoding.h"
#include "qkv/model/step_stage.h"
#include "qkv/model/token_embedding.h"
#include "qkv/model/transformer_block.h"

namespace qkv {

// What a forward pass can hand back besides the logits, for inspection and timing.
struct ForwardCapture {
  bool attention = false;  // fill attention_weights
  bool hidden = false;     // fill token_embeddings, input_embeddings and hidden_states
  std::vector<torch::Tensor> attention_weights;  // per layer: (B, H, T, T)
  torch::Tensor token_embeddings;                // (B, T, C): static, context-free
  torch::Tensor input_embeddings;                // (B, T, C): tokens + positions
  std::vector<torch::Tensor> hidden_states;      // per layer: (B, T, C) after that block
  StageHook on_stage;  // told as the embedding, each attention, each feed-forward and the head end
};

// A decoder-only transformer language model: embeddings, N blocks, final norm, LM head.
class TransformerLMImpl : public torch::nn::Module {
 public:
  explicit TransformerLMImpl(const ModelConfig& config);

  // idx: (B, T) int64 token ids -> logits (B, T, vocab). With `caches` (one per layer, created
  // at block_size positions when the vector is empty), idx holds only the new tokens and
  // positions continue from the cached length.
  torch::Tensor forward(const torch::Tensor& idx, ForwardCapture* capture = nullptr,
                        std::vector<KVCache>* caches = nullptr);

  // Mean next-token cross-entropy: logits (B, T, V), targets (B, T). kFused computes it with
  // qkv's CPU kernel (kernels/cross_entropy.h) where the logits are float32 on the CPU.
  static torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets,
                            KernelPath kernels = KernelPath::kReference);

  // The LM head's weight: the token embedding itself when weights are tied.
  torch::Tensor lm_head_weight() const;

  const ModelConfig& config() const { return config_; }

  // Stores every block's linear weights in `format` for inference on the CPU (kFloat32 undoes
  // it); see LinearImpl::pack_weight. Embeddings, layer norms and the LM head stay float32.
  // Returns the bytes the packed weights take.
  int64_t pack_weights(WeightFormat format);

  // Which code computes the layers that have a fused CPU kernel (KernelPath). A new model uses
  // the reference; TrainingStep applies runtime.kernels.
  void use_kernels(KernelPath path);

  TokenEmbedding tok_emb{nullptr};
  SinusoidalPositionalEncoding pos_enc{nullptr};  // when positional_encoding is sinusoidal
  torch::nn::Embedding pos_emb{nullptr};          // when it is learned
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  LayerNorm ln_f{nullptr};
  torch::Tensor lm_head;  // (vocab, C); undefined when tied

 private:
  void init_weights();
  ModelConfig config_;
  KernelPath kernels_ = KernelPath::kReference;  // for the embeddings' dropout (use_kernels)
};
TORCH_MODULE(TransformerLM);

}  // namespace qkv
