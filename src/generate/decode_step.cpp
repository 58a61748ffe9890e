#include "qkv/generate/decode_step.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace qkv {

DecodeStep::DecodeStep(TransformerLM model, std::vector<KVCache>& caches)
    : model_(std::move(model)), caches_(caches) {
  if (caches_.size() != model_->blocks->size() || caches_.empty() || caches_[0].length() == 0)
    throw std::invalid_argument("a decoding step needs one filled KV cache per layer");
  const auto [k, v] = caches_[0].buffers();  // (B, H, L, D)
  const auto device = k.device();
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(device);
  tokens_ = torch::zeros({k.size(0), 1}, longs);
  position_ = torch::zeros({}, longs);
  positions_ = torch::arange(k.size(2), longs);
  logits_ = torch::empty({k.size(0), model_->config().vocab_size},
                         torch::TensorOptions().dtype(torch::kFloat32).device(device));
  graph_ = std::make_unique<CapturedGraph>([this] { body(); }, device.is_cuda());
}

DecodeStep::~DecodeStep() = default;

torch::Tensor DecodeStep::run(const torch::Tensor& tokens) {
  const int64_t pos = caches_[0].length();
  if (pos >= caches_[0].capacity())
    throw std::length_error("the KV cache is full: " + std::to_string(pos) + " positions");
  torch::NoGradGuard no_grad;
  tokens_.copy_(tokens.view({-1, 1}));
  position_.fill_(pos);
  graph_->run();
  for (auto& cache : caches_) cache.set_length(pos + 1);
  return logits_;
}

void DecodeStep::body() {
  torch::NoGradGuard no_grad;
  auto& m = *model_;
  const int64_t B = tokens_.size(0), H = m.config().n_head, C = m.config().d_model;
  const auto at = position_.view({1});
  const auto table = m.pos_enc ? m.pos_enc->pe : m.pos_emb->weight;  // (block_size, C)
  auto x = m.tok_emb(tokens_) + table.index_select(0, at);           // (B, 1, C)
  // Keys after the new position hold nothing yet (or an earlier window's): masked out.
  const auto unwritten = positions_.gt(position_).view({1, 1, 1, -1});  // (1, 1, 1, L)
  for (size_t i = 0; i < m.blocks->size(); ++i) {
    auto* block = m.blocks[i]->as<TransformerBlockImpl>();
    auto& attn = *block->attn;
    const auto h = block->ln1(x);
    auto split = [&](const torch::Tensor& t) { return t.view({B, 1, H, C / H}).transpose(1, 2); };
    const auto q = split(attn.w_q(h)), k = split(attn.w_k(h)), v = split(attn.w_v(h));  // (B,H,1,D)
    auto [keys, values] = caches_[i].buffers();  // (B, H, L, D)
    keys.index_copy_(2, at, k);
    values.index_copy_(2, at, v);
    const double scale = attn.options.scale_scores() ? 1.0 / std::sqrt(double(C / H)) : 1.0;
    auto scores = torch::matmul(q * scale, keys.transpose(-2, -1));  // (B, H, 1, L)
    scores = scores.masked_fill(unwritten, -std::numeric_limits<float>::infinity());
    const auto y = torch::matmul(torch::softmax(scores, -1), values);  // (B, H, 1, D)
    x = x + attn.w_o(y.transpose(1, 2).reshape({B, 1, C}));
    x = x + block->ffn(block->ln2(x));
  }
  logits_.copy_(torch::linear(m.ln_f(x), m.lm_head_weight()).select(1, 0));  // (B, V)
}

}  // namespace qkv
