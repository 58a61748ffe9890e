#include "qkv/model/transformer_lm.h"

#include <cmath>
#include <stdexcept>

#include "qkv/kernels/cross_entropy.h"
#include "qkv/model/dropout.h"

namespace qkv {

TransformerLMImpl::TransformerLMImpl(const ModelConfig& config) : config_(config) {
  config_.validate();
  const auto& c = config_;
  tok_emb = register_module("tok_emb", TokenEmbedding(c.vocab_size, c.d_model));
  if (c.positional_encoding == PositionalEncodingKind::kSinusoidal)
    pos_enc = register_module("pos_enc", SinusoidalPositionalEncoding(c.block_size, c.d_model));
  else
    pos_emb = register_module("pos_emb", torch::nn::Embedding(c.block_size, c.d_model));
  drop = register_module("drop", torch::nn::Dropout(c.dropout));
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

torch::Tensor TransformerLMImpl::forward(const torch::Tensor& idx, ForwardCapture* capture,
                                         std::vector<KVCache>* caches) {
  if (idx.dim() != 2)
    throw std::invalid_argument("model input must be (batch, time) token ids, got " +
                                std::to_string(idx.dim()) + " dimensions");
  if (caches && caches->empty())
    for (int64_t i = 0; i < config_.n_layer; ++i) caches->emplace_back(config_.block_size);
  const int64_t T = idx.size(1);
  const int64_t past = caches ? (*caches)[0].length() : 0;
  if (past + T > config_.block_size)
    throw std::invalid_argument("sequence of " + std::to_string(past + T) +
                                " tokens exceeds the model's context length (block_size " +
                                std::to_string(config_.block_size) + ")");
  const bool want_attention = capture && capture->attention;
  const bool want_hidden = capture && capture->hidden;
  const StageHook no_hook;
  const StageHook& on_stage = capture ? capture->on_stage : no_hook;

  auto tok = tok_emb(idx);  // (B, T, C)
  auto pos =
      pos_enc ? pos_enc(T, past) : pos_emb(torch::arange(past, past + T, idx.options()));  // (T, C)
  auto x = tok + pos;  // (B, T, C)
  if (want_hidden) {
    capture->token_embeddings = tok;
    capture->input_embeddings = x;
  }
  x = apply_dropout(drop, x, kernels_);
  if (on_stage) on_stage(StepStage::kEmbedding);

  for (size_t i = 0; i < blocks->size(); ++i) {
    torch::Tensor weights;
    x = blocks[i]->as<TransformerBlockImpl>()->forward(x, want_attention ? &weights : nullptr,
                                                       caches ? &(*caches)[i] : nullptr, on_stage);
    if (want_attention) capture->attention_weights.push_back(weights);
    if (want_hidden) capture->hidden_states.push_back(x);
  }

  auto logits = torch::linear(ln_f(x), lm_head_weight());  // (B, T, vocab)
  if (on_stage) on_stage(StepStage::kHead);
  return logits;
}

torch::Tensor TransformerLMImpl::loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                      KernelPath kernels) {
  const auto flat_logits = logits.reshape({-1, logits.size(-1)});  // (B * T, V)
  const auto flat_targets = targets.reshape({-1});                 // (B * T)
  if (kernels == KernelPath::kFused && cross_entropy_supports(flat_logits, flat_targets))
    return qkv::cross_entropy(flat_logits, flat_targets);
  return torch::cross_entropy_loss(flat_logits, flat_targets);
}

int64_t TransformerLMImpl::pack_weights(WeightFormat format) {
  int64_t bytes = 0;
  for (auto& module : modules(/*include_self=*/false))
    if (auto* linear = module->as<Linear>()) {
      linear->pack_weight(format);
      if (linear->packed()) bytes += linear->packed()->bytes();
    }
  return bytes;
}

void TransformerLMImpl::use_kernels(KernelPath path) {
  kernels_ = path;
  for (auto& module : modules(/*include_self=*/false))
    if (auto* attention = module->as<MultiHeadSelfAttention>())
      attention->options.kernels(path);
    else if (auto* norm = module->as<LayerNorm>())
      norm->kernels = path;
    else if (auto* mlp = module->as<FeedForward>())
      mlp->kernels = path;
}

torch::Tensor TransformerLMImpl::lm_head_weight() const {
  return lm_head.defined() ? lm_head : tok_emb->weight;
}

}  // namespace qkv
