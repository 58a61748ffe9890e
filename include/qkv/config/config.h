#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/model/model_config.h"

namespace qkv {

// Bad configuration: the message names the file, the key path and what was expected.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // An error in a "section.key=value" override: what() reads "override ASSIGNMENT: DETAIL".
  static ConfigError in_override(const std::string& assignment, const std::string& detail);
  const std::string& override_assignment() const { return assignment_; }  // "" for a file
  const std::string& detail() const { return detail_; }

 private:
  std::string assignment_, detail_;
};

// The type the matrix products run in: fp32, or bf16 under autocast with fp32 weights.
enum class ComputeDtype { kFp32, kBf16 };
std::string to_string(ComputeDtype dtype);
ComputeDtype compute_dtype_from_string(const std::string& name);  // throws std::invalid_argument

struct TokenizerConfig {
  std::string kind = "char";  // "char", "word" (tokenizer/word_tokenizer.h) or "sentencepiece"
  std::string model_file;     // an existing SentencePiece .model to use instead of training one
  int64_t vocab_size = 2000;  // SentencePiece only; char takes the corpus's characters
  std::string model_type = "bpe";
  double character_coverage = 1.0;
  bool byte_fallback = true;
  int64_t input_sentence_size = 1000000;
};

struct DataConfig {
  std::vector<std::string> files;  // paths or globs
  std::string dir;                 // where train.bin, val.bin and meta.json go
  double val_fraction = 0.1;       // the last fraction of each file
  // "senses": data.files is one file that prepare writes when it is missing, the corpus made for
  // the contextual-embedding lesson (data/sense_corpus.h), seeded by runtime.seed. "none": the
  // files are the user's.
  std::string generate = "none";
};

struct TrainConfig {
  int64_t batch_size = 12;
  int64_t max_steps = 2000;
  int64_t grad_accum_steps = 1;
  double grad_clip = 1.0;  // 0 disables clipping
  int64_t log_every = 10;
  std::string out_dir;  // run directory; empty means runs/<config name>
  // Fine-tuning: a run directory or checkpoint whose weights a fresh run starts from (with a fresh
  // optimizer and schedule); its model and tokenizer replace this config's (fine_tuning.h).
  std::string init_from;
};

struct OptimConfig {
  double lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 0;  // 0 means max_steps
  double beta1 = 0.9;
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

struct EvalConfig {
  int64_t every = 250;
  int64_t batches = 20;
};

struct CheckpointConfig {
  int64_t every = 500;         // write last.pt every this many steps (0: only at the end)
  bool keep_periodic = false;  // also keep step_XXXXXXX.pt at each of those
  // Also rewrite report.html at each of those (it is always written at the end of a run).
  bool report = false;
};

struct RuntimeConfig {
  int64_t threads = 0;  // 0 = every core
  // fused: qkv's own CPU kernels with hand-written backward where they apply (float32 on the
  // CPU); reference: the plain LibTorch ops everywhere; auto: the faster of the two for this
  // LibTorch and model.dropout (faster_cpu_kernel_path). See KernelPath.
  std::string kernels = "auto";
  std::string device = "auto";
  int64_t seed = 1337;
  ComputeDtype dtype = ComputeDtype::kFp32;
  // On a GPU, replay the training step as one captured CUDA graph after a few eager steps
  // (LibTorch 2.4+ built with CUDA; ignored elsewhere).
  bool cuda_graph = true;
  // Data-parallel runs (several ranks): how they talk. auto: NCCL for CUDA, Gloo for CPU.
  std::string backend = "auto";
  int64_t timeout_s = 300;         // a collective waiting longer than this ends the run
  int64_t bucket_mb = 25;          // gradients are all-reduced in buckets of at most this many MB
  bool overlap_allreduce = false;  // start a bucket's all-reduce during backward
};

struct Config {
  ModelConfig model;
  TokenizerConfig tokenizer;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  RuntimeConfig runtime;
  std::string source;  // the file it came from, for messages

  // Reads a YAML file and applies `section.key=value` overrides on top. Throws ConfigError.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  // Parses YAML text (a resolved config stored in a checkpoint, say).
  static Config parse(const std::string& yaml, const std::string& source);

  void apply_override(const std::string& assignment);  // "section.key=value"
  // Cross-field checks and ranges; throws ConfigError naming the key.
  void validate() const;
  // Every key with its value, in the schema's order: the resolved config of a run.
  std::string to_yaml() const;
  // The dotted keys the schema knows, for suggestions and docs.
  static std::vector<std::string> known_keys();
};

// The closest string to `word` among `candidates` by edit distance, or "" if none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace qkv
