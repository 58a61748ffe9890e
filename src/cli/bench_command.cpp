// qkv bench: prints the benchmark report as a table, or as one JSON object with --json.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "qkv/bench/allreduce_benchmark.h"
#include "qkv/distributed/launch_environment.h"

#include "commands.h"
#include "qkv/bench/training_benchmark.h"
#include "qkv/data/data_preparer.h"
#include "qkv/runtime/runtime_setup.h"

namespace qkv::cli {

namespace {

void print_json(const std::string& config, const BenchmarkReport& r) {
  const auto& b = r.breakdown;
  nlohmann::json j = {{"config", config},
                      {"device", r.device},
                      {"gpu", r.gpu},
                      {"dtype", r.dtype},
                      {"threads", r.threads},
                      {"blas_threads", r.blas_threads},
                      {"blas", r.blas},
                      {"batch_size", r.batch_size},
                      {"block_size", r.block_size},
                      {"parameters", r.parameters},
                      {"matmul_fp32_gflops", r.matmul_fp32_gflops},
                      {"matmul_bf16_gflops", r.matmul_bf16_gflops},
                      {"step_ms", r.step_ms},
                      {"tokens_per_s", r.tokens_per_s},
                      {"flops_per_step", r.flops_per_step},
                      {"achieved_gflops", r.achieved_gflops},
                      {"mfu", r.mfu},
                      {"breakdown_ms",
                       {{"embedding", b.embedding},
                        {"attention", b.attention},
                        {"feed_forward", b.feed_forward},
                        {"head_and_loss", b.head_and_loss},
                        {"backward", b.backward},
                        {"optimizer", b.optimizer}}},
                      {"generate_cached_tokens_per_s", r.generate_cached_tokens_per_s},
                      {"generate_uncached_tokens_per_s", r.generate_uncached_tokens_per_s},
                      {"generate_batch1_tokens_per_s", r.generate_batch1_tokens_per_s},
                      {"generate_batch32_tokens_per_s", r.generate_batch32_tokens_per_s},
                      {"eval_tokens_per_s", r.eval_tokens_per_s},
                      {"peak_rss_mb", r.peak_rss_mb},
                      {"peak_gpu_mb", r.peak_gpu_mb}};
  std::cout << j.dump() << std::endl;
}

void print_table(const std::string& config, const BenchmarkOptions& options,
                 const BenchmarkReport& r) {
  const auto& b = r.breakdown;
  auto share = [&](double ms) { return 100.0 * ms / r.step_ms; };
  std::printf("config                %s (%s on %s, batch %lld x %lld, %.2fM parameters)\n",
              config.c_str(), r.dtype.c_str(), r.device.c_str(), (long long)r.batch_size,
              (long long)r.block_size, r.parameters / 1e6);
  std::printf("matmul ceiling        fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n", r.matmul_fp32_gflops,
              r.matmul_bf16_gflops);
  std::printf("training step         %.2f ms (median of %lld), %.0f tokens/s\n", r.step_ms,
              (long long)options.steps, r.tokens_per_s);
  std::printf("model FLOPs           %.2f GFLOP/step, %.1f GFLOP/s achieved, MFU %.1f%%\n",
              r.flops_per_step / 1e9, r.achieved_gflops, 100 * r.mfu);
  std::printf(
      "breakdown             embedding %.2f ms (%.0f%%) | attention %.2f (%.0f%%) | "
      "feed-forward %.2f (%.0f%%)\n",
      b.embedding, share(b.embedding), b.attention, share(b.attention), b.feed_forward,
      share(b.feed_forward));
  std::printf(
      "                      head+loss %.2f (%.0f%%) | backward %.2f (%.0f%%) | "
      "optimizer %.2f (%.0f%%)\n",
      b.head_and_loss, share(b.head_and_loss), b.backward, share(b.backward), b.optimizer,
      share(b.optimizer));
  if (options.generation) {
    std::printf(
        "generation            %.1f tokens/s with KV cache, %.1f without (%.1fx), to a "
        "full context of %lld\n",
        r.generate_cached_tokens_per_s, r.generate_uncached_tokens_per_s,
        r.generate_cached_tokens_per_s / r.generate_uncached_tokens_per_s, (long long)r.block_size);
    std::printf(
        "batched generation    %.1f tokens/s at batch 1, %.1f at batch 32 (KV cache, greedy)\n",
        r.generate_batch1_tokens_per_s, r.generate_batch32_tokens_per_s);
    std::printf("evaluation            %.0f tokens/s\n", r.eval_tokens_per_s);
  }
  std::printf("peak resident memory  %.0f MB\n", r.peak_rss_mb);
  if (!r.gpu.empty())
    std::printf("GPU                   %s, peak %.0f MB allocated in training\n", r.gpu.c_str(),
                r.peak_gpu_mb);
}

}  // namespace

namespace {

int run_allreduce_bench(const BenchArgs& args, Config config) {
  const auto launch = LaunchEnvironment::from_environment();
  if (args.nproc > 1 && launch)
    throw std::invalid_argument("--nproc under a launcher that already set WORLD_SIZE");
  if (args.nproc > 1) return launch_local_job(args.nproc, args.worker_argv);
  if (!launch || launch->world_size < 2)
    throw std::invalid_argument(
        "--allreduce needs 2 or more ranks: --nproc N, or a launcher's RANK and WORLD_SIZE");
  if (launch->rank != 0) spdlog::set_level(spdlog::level::warn);
  start_runtime(static_cast<int>(config.runtime.threads));
  if (config.model.vocab_size <= 0) config.model.vocab_size = ModelConfig{}.vocab_size;
  const auto r = run_allreduce_benchmark(config, *launch, args.repeats);
  if (launch->rank != 0) return 0;
  if (args.json) {
    std::cout << nlohmann::json({{"config", args.config},
                                 {"ranks", r.ranks},
                                 {"backend", r.backend},
                                 {"bytes", r.bytes},
                                 {"buckets", r.buckets},
                                 {"median_ms", r.median_ms},
                                 {"algorithm_gb_per_s", r.algorithm_gb_per_s},
                                 {"bus_gb_per_s", r.bus_gb_per_s}})
                     .dump()
              << "\n";
  } else {
    std::printf(
        "gradient all-reduce, %d ranks (%s): %.2f MB in %lld bucket(s), median %.2f ms over %d; "
        "%.2f GB/s algorithm bandwidth, %.2f GB/s bus bandwidth\n",
        r.ranks, r.backend.c_str(), double(r.bytes) / 1e6, (long long)r.buckets, r.median_ms,
        args.repeats, r.algorithm_gb_per_s, r.bus_gb_per_s);
  }
  return 0;
}

}  // namespace

int run_bench(const BenchArgs& args) {
  Config config = Config::load(args.config, args.overrides);
  // The vocabulary of the prepared data when there is some; otherwise the config's.
  if (std::filesystem::exists(config.data.dir + "/meta.json"))
    config.model.vocab_size = DatasetMeta::load(config.data.dir).vocab_size;
  if (args.allreduce) return run_allreduce_bench(args, config);
  args.options.validate();  // before the set-up: bad options fail at once
  auto runtime = start_runtime(static_cast<int>(config.runtime.threads));
  const BenchmarkOptions& options = args.options;
  auto r = run_benchmark(config, options);
  r.threads = runtime.threads;
  r.blas_threads = runtime.blas_threads;
  r.blas = runtime.blas;
  if (args.json)
    print_json(args.config, r);
  else
    print_table(args.config, options, r);
  return 0;
}

}  // namespace qkv::cli
