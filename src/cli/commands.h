#pragma once

#include <string>
#include <vector>

#include "qkv/runtime/runtime_setup.h"

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

int run_prepare(const PrepareArgs& args);
int run_bench(const BenchArgs& args);
int run_generate(const GenerateArgs& args);
int run_eval(const EvalArgs& args);
int run_train(const TrainArgs& args);

// Sets threads from `threads` (0 = every core) and logs the version, LibTorch version, BLAS
// and thread counts.
RuntimeInfo start_runtime(int threads);

}  // namespace qkv::cli
