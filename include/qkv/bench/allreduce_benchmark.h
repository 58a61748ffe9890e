#pragma once

#include <cstdint>
#include <string>

#include "qkv/config/config.h"
#include "qkv/distributed/launch_environment.h"

namespace qkv {

struct AllReduceBenchmark {
  int ranks = 0;
  std::string backend;
  int64_t bytes = 0;    // the gradients each rank contributes per step
  int64_t buckets = 0;  // runtime.bucket_mb's cut of them
  double median_ms = 0;
  double algorithm_gb_per_s = 0;  // bytes / time
  double bus_gb_per_s = 0;        // what each link carries in a ring: 2 (N-1)/N bytes / time
};

// Times the gradient averaging a data-parallel training step runs (GradientReducer::average, as
// runtime.bucket_mb cuts the config's model), `repeats` times, each after a barrier so that the
// time is the transfer's and not one rank waiting for a slower one. Every rank of the job `env`
// describes must call it.
AllReduceBenchmark run_allreduce_benchmark(const Config& config, const LaunchEnvironment& env,
                                           int repeats);

}  // namespace qkv
