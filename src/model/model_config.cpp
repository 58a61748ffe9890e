#include "qkv/model/model_config.h"

#include <stdexcept>

namespace qkv {

namespace {
void require_positive(const char* field, int64_t value) {
  if (value <= 0)
    throw std::invalid_argument(std::string("model.") + field + " must be positive, got " +
                                std::to_string(value));
}
}  // namespace

void ModelConfig::validate() const {
  require_positive("vocab_size", vocab_size);
  require_positive("block_size", block_size);
  require_positive("n_layer", n_layer);
  require_positive("n_head", n_head);
  require_positive("d_model", d_model);
  if (d_ff < 0)
    throw std::invalid_argument("model.d_ff must be positive (or 0 for 4*d_model), got " +
                                std::to_string(d_ff));
  if (d_model % n_head != 0)
    throw std::invalid_argument("model.d_model (" + std::to_string(d_model) +
                                ") must be divisible by model.n_head (" + std::to_string(n_head) +
                                ")");
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw std::invalid_argument("model.dropout must be in [0, 1), got " + std::to_string(dropout));
  if (activation != "gelu" && activation != "gelu_tanh")
    throw std::invalid_argument("model.activation must be 'gelu' or 'gelu_tanh', got '" +
                                activation + "'");
  if (positional_encoding == PositionalEncodingKind::kSinusoidal && d_model % 2 != 0)
    throw std::invalid_argument("model.d_model must be even for sinusoidal encodings, got " +
                                std::to_string(d_model));
}

int64_t ModelConfig::parameter_count() const {
  const int64_t C = d_model, F = ffn_dim(), b = bias ? 1 : 0;
  const int64_t layer_norm = C + b * C;
  const int64_t attention = 4 * (C * C + b * C);  // W^Q, W^K, W^V, W^O
  const int64_t feed_forward = C * F + b * F + F * C + b * C;
  const int64_t block = 2 * layer_norm + attention + feed_forward;
  int64_t total = vocab_size * C + n_layer * block + layer_norm;
  if (positional_encoding == PositionalEncodingKind::kLearned) total += block_size * C;
  if (!tie_weights) total += vocab_size * C;  // the LM head has no bias, as in GPT-2
  return total;
}

std::string to_string(PositionalEncodingKind kind) {
  return kind == PositionalEncodingKind::kSinusoidal ? "sinusoidal" : "learned";
}

PositionalEncodingKind positional_encoding_from_string(const std::string& name) {
  if (name == "sinusoidal") return PositionalEncodingKind::kSinusoidal;
  if (name == "learned") return PositionalEncodingKind::kLearned;
  throw std::invalid_argument("model.positional_encoding must be 'sinusoidal' or 'learned', got '" +
                              name + "'");
}

}  // namespace qkv
