#include "qkv/bench/allreduce_benchmark.h"

#include <chrono>

#include "qkv/distributed/gradient_reducer.h"
#include "qkv/distributed/process_group.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/median.h"
#include "qkv/runtime/runtime_setup.h"

namespace qkv {

AllReduceBenchmark run_allreduce_benchmark(const Config& config, const LaunchEnvironment& env,
                                           int repeats) {
  const torch::Device device(resolve_device(config.runtime.device));
  ProcessGroupOptions options;
  options.backend = config.runtime.backend;
  options.device = device.type();
  options.timeout = std::chrono::seconds(config.runtime.timeout_s);
  auto group = ProcessGroup::connect(env, options);
  TransformerLM model(config.model);
  model->to(device);
  auto params = model->parameters();
  GradientReducerOptions reducer_options;
  reducer_options.bucket_bytes = config.runtime.bucket_mb << 20;
  GradientReducer reducer(params, group, reducer_options);
  std::vector<double> ms;
  for (int i = 0; i < repeats + 1; ++i) {  // the first one connects Gloo's pairs: not timed
    for (auto& p : params) p.mutable_grad() = torch::randn_like(p);
    group->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    reducer.average();
    if (device.is_cuda()) torch::cuda::synchronize();
    const double elapsed =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) ms.push_back(elapsed);
  }
  AllReduceBenchmark r;
  r.ranks = group->world_size();
  r.backend = group->backend();
  r.bytes = reducer.bytes_per_step();
  r.buckets = reducer.bucket_count();
  r.median_ms = median(ms);
  r.algorithm_gb_per_s = double(r.bytes) / 1e6 / r.median_ms;
  r.bus_gb_per_s = r.algorithm_gb_per_s * 2.0 * (r.ranks - 1) / r.ranks;
  return r;
}

}  // namespace qkv
