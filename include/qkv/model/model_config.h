#pragma once

#include <cstdint>
#include <string>

namespace qkv {

enum class PositionalEncodingKind { kSinusoidal, kLearned };

// Hyper-parameters of a decoder-only transformer. Plain data: no LibTorch here, so the config
// and command-line layers can use it without paying for torch headers.
struct ModelConfig {
  int64_t vocab_size = 65;
  int64_t block_size = 64;  // context length: the longest sequence the model accepts
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t d_model = 128;
  int64_t d_ff = 0;  // 0 means 4 * d_model, the paper's ratio
  double dropout = 0.0;
  bool bias = true;
  // Off by default: with sinusoidal codes the input embedding is scaled by sqrt(d_model) and
  // must stand out against the codes, while the output layer wants small weights; one matrix
  // cannot serve both. Shakespeare char, 2000 steps: validation loss 1.930 tied, 1.876 untied.
  bool tie_weights = false;
  PositionalEncodingKind positional_encoding = PositionalEncodingKind::kSinusoidal;
  // The feed-forward layer's GELU: "gelu", the exact x * Phi(x), or "gelu_tanh", the tanh
  // approximation GPT-2 was trained with (Hugging Face's "gelu_new").
  std::string activation = "gelu";
  // Multiply token embeddings by sqrt(d_model), as "Attention Is All You Need" does (see
  // TokenEmbedding); GPT-2 does not.
  bool scale_embeddings = true;

  int64_t ffn_dim() const { return d_ff > 0 ? d_ff : 4 * d_model; }
  int64_t head_dim() const { return d_model / n_head; }

  // Throws std::invalid_argument naming the first field that cannot work, and its value.
  void validate() const;

  // Closed-form parameter count, independent of the module code (a test compares the two).
  int64_t parameter_count() const;
};

std::string to_string(PositionalEncodingKind kind);
PositionalEncodingKind positional_encoding_from_string(const std::string& name);

}  // namespace qkv
