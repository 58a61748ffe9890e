#pragma once

#include <string>
#include <vector>

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

int run_prepare(const PrepareArgs& args);
int run_train(const TrainArgs& args);

// Logs the version, LibTorch version, BLAS and thread count; sets threads from `threads`.
void start_runtime(int threads);

}  // namespace qkv::cli
