#pragma once

#include <string>
#include <vector>

#include "qkv/runtime/runtime_setup.h"

namespace qkv {
struct Checkpoint;
}

namespace qkv::cli {

struct PrepareArgs {
  std::string config;
  std::vector<std::string> overrides;
};

struct TrainArgs {
  std::string config;  // empty when resuming with the stored config
  std::vector<std::string> overrides;
  std::string resume;  // run directory
  bool skip_prepare = false;
};

struct GenerateArgs {
  std::string checkpoint;  // file or run directory
  std::string prompt;
  std::string prompt_file;
  int64_t max_new_tokens = 500;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 1337;
  int num_samples = 1;
  std::vector<std::string> stop;
  bool no_kv_cache = false;
  std::string device = "auto";
  int threads = 0;
};

struct EvalArgs {
  std::string checkpoint;
  std::string data;  // raw text, or a prepared .bin token file
  int64_t stride = 0;
  int64_t batch_size = 8;
  bool json = false;
  std::string device = "auto";
  int threads = 0;
};

struct BenchArgs {
  std::string config = "configs/shakespeare_char.yaml";
  std::vector<std::string> overrides;
  int64_t steps = 20;
  int64_t warmup = 3;
  bool json = false;
  bool no_generation = false;
};

struct AttentionArgs {
  std::string checkpoint;
  std::string text;
  int64_t layer = 0;  // 1-based; 0 = every layer
  int64_t head = 0;   // 1-based; 0 = the heads' mean and then each head
  std::string out = "attention";
  std::string device = "auto";
  int threads = 0;
};

struct EmbedArgs {
  std::string checkpoint;
  std::vector<std::string> texts;
  std::string word;
  int top_k = 3;
  bool json = false;
  std::string device = "auto";
  int threads = 0;
};

struct ReportArgs {
  std::string run_dir;
  std::string text;  // attention text; empty = a line of validation text
  int64_t sample_tokens = 300;
  uint64_t seed = 1337;
  int threads = 0;
};

int run_prepare(const PrepareArgs& args);
int run_attention(const AttentionArgs& args);
int run_embed(const EmbedArgs& args);
int run_report(const ReportArgs& args);
int run_bench(const BenchArgs& args);
int run_generate(const GenerateArgs& args);
int run_eval(const EvalArgs& args);
int run_train(const TrainArgs& args);

// Loads a checkpoint (file or run directory) onto `device` in eval mode, after start_runtime.
Checkpoint load_for_inference(const std::string& path, const std::string& device, int threads);

// Sets threads from `threads` (0 = every core) and logs the version, LibTorch version, BLAS
// and thread counts.
RuntimeInfo start_runtime(int threads);

}  // namespace qkv::cli
