#include "commands.h"

#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <atomic>
#include <csignal>

#include "qkv/config/config.h"
#include "qkv/data/data_preparer.h"
#include "qkv/runtime/progress_line.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/trainer.h"

namespace qkv::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void request_stop(int) { g_stop.store(true); }

void log_prepare_result(const PrepareResult& r) {
  const auto& m = r.meta;
  if (r.up_to_date) {
    spdlog::info("{} is up to date ({} train + {} val tokens, {} tokenizer, vocab {})", m.dir,
                 m.train_tokens, m.val_tokens, m.tokenizer_kind, m.vocab_size);
    return;
  }
  const double mb = double(r.bytes_encoded) / 1e6;
  spdlog::info("prepared {}: {} train + {} val tokens ({}), {} tokenizer with vocab {}; encoded "
               "{:.2f} MB in {:.2f} s ({:.1f} MB/s)",
               m.dir, m.train_tokens, m.val_tokens, to_string(m.dtype), m.tokenizer_kind,
               m.vocab_size, mb, r.encode_seconds, mb / std::max(r.encode_seconds, 1e-9));
}

PrepareResult prepare_with_progress(const Config& config) {
  ProgressLine line;
  auto start = std::chrono::steady_clock::now();
  auto result = prepare_data(config, [&](int64_t done, int64_t total) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char text[160];
    std::snprintf(text, sizeof text, "encoding %.1f/%.1f MB | %.1f MB/s", done / 1e6, total / 1e6,
                  done / 1e6 / std::max(s, 1e-9));
    line.update(ProgressLine::bar(double(done) / double(std::max<int64_t>(total, 1))) + " " + text);
  });
  line.clear();
  log_prepare_result(result);
  return result;
}

}  // namespace

void start_runtime(int threads) {
  auto info = configure_runtime(threads);
  spdlog::info("qkv {} | LibTorch {} | BLAS: {} | threads: LibTorch {}, BLAS {}", QKV_VERSION,
               TORCH_VERSION, info.blas, info.threads, info.blas_threads);
}

int run_prepare(const PrepareArgs& args) {
  Config config = Config::load(args.config, args.overrides);
  start_runtime(static_cast<int>(config.runtime.threads));
  prepare_with_progress(config);
  return 0;
}

int run_train(const TrainArgs& args) {
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  TrainerOptions options;
  options.stop = &g_stop;

  std::unique_ptr<Trainer> trainer;
  if (!args.resume.empty()) {
    trainer = Trainer::resume(args.resume, args.overrides, options);
    start_runtime(static_cast<int>(trainer->config().runtime.threads));
  } else {
    Config config = Config::load(args.config, args.overrides);
    start_runtime(static_cast<int>(config.runtime.threads));
    if (!args.skip_prepare) prepare_with_progress(config);
    trainer = std::make_unique<Trainer>(config, options);
  }
  auto result = trainer->run();
  if (result.interrupted) return 0;
  spdlog::info("done: {} steps in {:.1f} s (median {:.1f} ms/step); best val loss {:.4f} at step {}",
               result.final_step, result.wall_seconds, result.median_step_ms, result.best_val_loss,
               result.best_step);
  spdlog::info("checkpoints: {}/best.pt (best val loss), {}", result.run_dir,
               result.last_checkpoint);
  return 0;
}

}  // namespace qkv::cli
