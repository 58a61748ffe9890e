#pragma once

#include <string>

#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

struct SentencePieceTrainOptions {
  std::vector<std::string> input_files;
  int vocab_size = 2000;
  std::string model_type = "bpe";  // or "unigram"
  double character_coverage = 1.0;
  bool byte_fallback = true;
  int64_t input_sentence_size = 1000000;  // sentences sampled: bounds the trainer's memory
  int num_threads = 0;                    // 0 = every core
};

// Subword tokenization through SentencePiece, which runs in its own link namespace (see
// sentencepiece_plugin_api.h). Holds the serialized model, so a checkpoint carries it whole.
class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_bytes);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  static SentencePieceTokenizer train(const SentencePieceTrainOptions& options,
                                      const std::string& work_dir);
  static SentencePieceTokenizer load_model_file(const std::string& path);

  std::string kind() const override { return "sentencepiece"; }
  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(const std::vector<TokenId>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  SpecialIds special_ids() const override { return special_; }
  std::string piece(TokenId id) const override;
  std::string serialize() const override { return model_bytes_; }

  SentencePieceTokenizer(SentencePieceTokenizer&& other) noexcept;

 private:
  std::string model_bytes_;
  void* handle_ = nullptr;
  int64_t vocab_size_ = 0;
  SpecialIds special_;
};

// Path of the plugin that was loaded, for logs and errors.
std::string sentencepiece_plugin_path();

}  // namespace qkv
