#include "qkv/model/transformer_lm.h"

#include <cmath>
#include <stdexcept>
#include <tuple>

namespace qkv {

TransformerLMImpl::TransformerLMImpl(const ModelConfig& config) : config_(config) {
  config_.validate();
  const auto& c = config_;
  tok_emb = register_module("tok_emb", TokenEmbedding(c.vocab_size, c.d_model, c.scale_embeddings));
  if (c.positional_encoding == PositionalEncodingKind::kSinusoidal)
    pos_enc = register_module("pos_enc", SinusoidalPositionalEncoding(c.block_size, c.d_model));
  else
    pos_emb = register_module("pos_emb", torch::nn::Embedding(c.block_size, c.d_model));
  drop = register_module("drop", Dropout(c.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) blocks->push_back(TransformerBlock(c));
  ln_f = register_module("ln_f", LayerNorm(c.d_model, c.bias));
  if (!c.tie_weights)
    lm_head = register_parameter("lm_head", torch::empty({c.vocab_size, c.d_model}));
  init_weights();
}

void TransformerLMImpl::init_weights() {
  // GPT-2: N(0, 0.02) everywhere, zero biases, and the projections that write into the residual
  // stream scaled by 1/sqrt(2 * n_layer) so its variance does not grow with depth.
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<Linear>()) {
      torch::nn::init::normal_(linear->weight, 0.0, 0.02);
      if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
    } else if (auto* embedding = module->as<torch::nn::Embedding>()) {
      torch::nn::init::normal_(embedding->weight, 0.0, 0.02);
    }
  }
  torch::nn::init::normal_(tok_emb->weight, 0.0, 0.02);
  if (lm_head.defined()) torch::nn::init::normal_(lm_head, 0.0, 0.02);
  const double residual_std = 0.02 / std::sqrt(2.0 * config_.n_layer);
  for (auto& block : *blocks) {
    auto* b = block->as<TransformerBlockImpl>();
    torch::nn::init::normal_(b->attn->w_o->weight, 0.0, residual_std);
    torch::nn::init::normal_(b->ffn->fc_out->weight, 0.0, residual_std);
  }
}

torch::Tensor TransformerLMImpl::forward(const torch::Tensor& idx, std::vector<KVCache>* caches) {
  const int64_t past = check_input(idx, caches);
  auto x = drop(tok_emb(idx) + positions(idx.size(1), past, idx));  // (B, T, C)
  for (size_t i = 0; i < blocks->size(); ++i)
    x = blocks[i]->as<TransformerBlockImpl>()->forward(x, caches ? &(*caches)[i] : nullptr);
  return torch::linear(ln_f(x), lm_head_weight());  // (B, T, vocab)
}

Inspection TransformerLMImpl::inspect(const torch::Tensor& idx) {
  check_input(idx, nullptr);
  Inspection r;
  r.token_embeddings = tok_emb(idx);                                         // (B, T, C)
  r.input_embeddings = r.token_embeddings + positions(idx.size(1), 0, idx);  // (B, T, C)
  auto x = drop(r.input_embeddings);
  for (auto& block : *blocks) {
    torch::Tensor weights;
    std::tie(x, weights) = block->as<TransformerBlockImpl>()->forward_with_weights(x);
    r.hidden_states.push_back(x);
    r.attention_weights.push_back(weights);
  }
  r.logits = torch::linear(ln_f(x), lm_head_weight());
  return r;
}

// The positions' vectors: the sinusoidal table's rows, or the learned embedding's.
torch::Tensor TransformerLMImpl::positions(int64_t T, int64_t past, const torch::Tensor& idx) {
  return pos_enc ? pos_enc(T, past) : pos_emb(torch::arange(past, past + T, idx.options()));
}

// Refuses what the model cannot take; creates the caches when empty. Returns the cached length.
int64_t TransformerLMImpl::check_input(const torch::Tensor& idx, std::vector<KVCache>* caches) {
  if (idx.dim() != 2)
    throw std::invalid_argument("model input must be (batch, time) token ids, got " +
                                std::to_string(idx.dim()) + " dimensions");
  if (caches && caches->empty())
    for (int64_t i = 0; i < config_.n_layer; ++i) caches->emplace_back(config_.block_size);
  const int64_t past = caches ? (*caches)[0].length() : 0;
  if (past + idx.size(1) > config_.block_size)
    throw std::invalid_argument("sequence of " + std::to_string(past + idx.size(1)) +
                                " tokens exceeds the model's context length (block_size " +
                                std::to_string(config_.block_size) + ")");
  return past;
}

torch::Tensor TransformerLMImpl::loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}),  // (B * T, V)
                                   targets.reshape({-1}));                 // (B * T)
}

torch::Tensor TransformerLMImpl::lm_head_weight() const {
  return lm_head.defined() ? lm_head : tok_emb->weight;
}

}  // namespace qkv
