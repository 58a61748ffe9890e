#pragma once

// Shared by the tests that need a corpus on disk and the tiny config pointed at it.
#include <sys/wait.h>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "qkv/config/config.h"
#include "qkv/data/data_preparer.h"
#include "qkv/model/transformer_lm.h"

// The SentencePiece plugin is loaded with dlmopen, which AddressSanitizer cannot follow.
#if defined(__SANITIZE_ADDRESS__)
#define REQUIRE_SENTENCEPIECE_PLUGIN()                                                     \
  GTEST_SKIP() << "the SentencePiece plugin cannot load under AddressSanitizer (dlmopen: " \
                  "shadow memory range interleaves with an existing memory mapping)"
#else
#define REQUIRE_SENTENCEPIECE_PLUGIN() (void)0
#endif

namespace qkv::testing {

// A fresh directory under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    path_ = std::filesystem::temp_directory_path() /
            ("qkv_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& leaf) const { return (path_ / leaf).string(); }

 private:
  std::filesystem::path path_;
};

// Varied, line-structured English: enough for a tokenizer to learn pieces and a model to learn
// something, small enough to prepare in milliseconds.
inline std::string sample_corpus(int lines = 600) {
  const char* subjects[] = {"The king", "A fool", "My lord", "The queen", "Her brother", "Romeo"};
  const char* verbs[] = {"speaks of", "weeps for", "remembers", "dreams of", "forgets", "loves"};
  const char* objects[] = {"the river bank.", "the money bank.", "an apple and orange.",
                           "the phone.",      "sweet sorrow.",   "the crown of England."};
  std::string text;
  for (int i = 0; i < lines; ++i) {
    text += subjects[(i * 7) % 6];
    text += ' ';
    text += verbs[(i * 5 + i / 6) % 6];
    text += ' ';
    text += objects[(i * 11 + i / 36) % 6];
    text += '\n';
  }
  return text;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// configs/tiny.yaml with its data and run directories moved under `dir`.
inline Config tiny_config(const TempDir& dir, std::vector<std::string> overrides = {}) {
  overrides.insert(overrides.begin(),
                   {"data.files=" + (dir / "corpus.txt"), "data.dir=" + (dir / "data"),
                    "train.out_dir=" + (dir / "run")});
  return Config::load(std::string(QKV_SOURCE_DIR) + "/configs/tiny.yaml", overrides);
}

// tiny_config over a fresh sample corpus, prepared.
inline Config prepared_tiny(const TempDir& dir, std::vector<std::string> overrides = {}) {
  write_file(dir / "corpus.txt", sample_corpus(400));
  auto config = tiny_config(dir, std::move(overrides));
  prepare_data(config);
  return config;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout only
};

// Runs a shell command and captures its standard output.
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  std::FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) r.out.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `qkv ARGS`, stderr discarded.
inline CommandResult run_qkv(const std::string& args) {
  return run_command(std::string(QKV_BINARY) + " " + args + " 2> /dev/null");
}

// A 2-layer, 2-head model with random weights from `seed`, in eval mode.
inline TransformerLM random_model(int64_t vocab, int64_t block_size, int64_t d_model, uint64_t seed,
                                  double dropout = 0.0) {
  torch::manual_seed(seed);
  ModelConfig c;
  c.vocab_size = vocab;
  c.block_size = block_size;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = d_model;
  c.dropout = dropout;
  TransformerLM model(c);
  model->eval();
  return model;
}

// The largest absolute difference between two models' corresponding parameters.
inline double max_param_difference(TransformerLM& a, TransformerLM& b) {
  double worst = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  return worst;
}

// The largest difference between two models' parameters, counted in float32 units in the last
// place of each tensor's largest value in `b`: two implementations of one update that round in
// another order (LibTorch's fused AdamW, vectorised per CPU, against optimizer.step()) differ by
// about one; a wrong step count or learning rate by thousands.
inline double max_param_difference_in_ulps(TransformerLM& a, TransformerLM& b) {
  double worst = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    const double ulp = std::numeric_limits<float>::epsilon() * pb[i].abs().max().item<double>();
    const double difference = (pa[i] - pb[i]).abs().max().item<double>();
    worst = std::max(worst, difference == 0 ? 0.0 : difference / ulp);
  }
  return worst;
}

// Adam divides each gradient by its own running scale, so a last-bit difference between two
// optimizer implementations becomes a visible one a few steps later wherever gradients are
// round-off noise (the key bias has no effect on softmax: its gradient is ~1e-13). Tests that
// compare steps therefore give both models the same weights again after each one.
inline void copy_parameters(TransformerLM& to, TransformerLM& from) {
  torch::NoGradGuard no_grad;
  auto t = to->parameters(), f = from->parameters();
  for (size_t i = 0; i < t.size(); ++i) t[i].copy_(f[i]);
}

}  // namespace qkv::testing
