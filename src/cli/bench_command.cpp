// qkv bench: prints the benchmark report as a table, or as one JSON object with --json.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

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

int run_bench(const BenchArgs& args) {
  args.options.validate();  // before the set-up: bad options fail at once
  Config config = Config::load(args.config, args.overrides);
  auto runtime = start_runtime(static_cast<int>(config.runtime.threads));
  // The vocabulary of the prepared data when there is some; otherwise the config's.
  if (std::filesystem::exists(config.data.dir + "/meta.json"))
    config.model.vocab_size = DatasetMeta::load(config.data.dir).vocab_size;
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
