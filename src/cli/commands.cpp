#include "commands.h"

#include <spdlog/spdlog.h>
#include <torch/version.h>

#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "qkv/config/config.h"
#include "qkv/data/data_preparer.h"
#include "qkv/distributed/launch_environment.h"
#include "qkv/distributed/local_launcher.h"
#include "qkv/eval/perplexity_evaluator.h"
#include "qkv/export/model_export.h"
#include "qkv/export/model_import.h"
#include "qkv/generate/text_generator.h"
#include "qkv/io/file_bytes.h"
#include "qkv/kernels/packed_linear.h"
#include "qkv/report/training_report.h"
#include "qkv/runtime/progress_line.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/checkpoint.h"
#include "qkv/train/fine_tuning.h"
#include "qkv/train/trainer.h"

namespace qkv::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void request_stop(int) {
  g_stop.store(true);
}

void log_prepare_result(const PrepareResult& r) {
  const auto& m = r.meta;
  if (r.up_to_date) {
    spdlog::info("{} is up to date ({} train + {} val tokens, {} tokenizer, vocab {})", m.dir,
                 m.train_tokens, m.val_tokens, m.tokenizer_kind, m.vocab_size);
    return;
  }
  const double mb = double(r.bytes_encoded) / 1e6;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  spdlog::info(
      "prepared {}: {} train + {} val tokens ({}), {} tokenizer with vocab {}; encoded "
      "{:.2f} MB in {:.2f} s ({:.1f} MB/s); peak memory {:.0f} MB",
      m.dir, m.train_tokens, m.val_tokens, to_string(m.dtype), m.tokenizer_kind, m.vocab_size, mb,
      r.encode_seconds, mb / std::max(r.encode_seconds, 1e-9), usage.ru_maxrss / 1024.0);
}

PrepareResult prepare_with_progress(const Config& config, const Tokenizer* tokenizer = nullptr) {
  ProgressLine line;
  auto start = std::chrono::steady_clock::now();
  auto show = [&](int64_t done, int64_t total) {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char text[160];
    std::snprintf(text, sizeof text, "encoding %.1f/%.1f MB | %.1f MB/s", done / 1e6, total / 1e6,
                  done / 1e6 / std::max(s, 1e-9));
    line.update(ProgressLine::bar(double(done) / double(std::max<int64_t>(total, 1))) + " " + text);
  };
  auto result = prepare_data(config, show, tokenizer);
  line.clear();
  log_prepare_result(result);
  return result;
}

}  // namespace

RuntimeInfo start_runtime(int threads, CoreOwner owner) {
  auto info = configure_runtime(threads, owner);
  spdlog::info("qkv {} | LibTorch {} | BLAS: {} | threads: LibTorch {}, BLAS {}", QKV_VERSION,
               TORCH_VERSION, info.blas, info.threads, info.blas_threads);
  return info;
}

int run_prepare(const PrepareArgs& args) {
  Config config = Config::load(args.config, args.overrides);
  start_runtime(static_cast<int>(config.runtime.threads));
  const auto source = adopt_init_from(config, args.overrides);
  prepare_with_progress(config, source.tokenizer.get());
  return 0;
}

int launch_local_job(int nproc, const std::vector<std::string>& worker_argv) {
  // A MASTER_PORT that is not a port is refused, not replaced by a free one.
  const auto chosen = LaunchEnvironment::master_port_from_environment();
  const uint16_t port = chosen ? *chosen : free_local_port();
  spdlog::info("starting {} data-parallel workers (rendezvous at 127.0.0.1:{})", nproc, port);
  FailedWorker failed;
  const int status = run_local_workers(worker_argv, nproc, port, &failed);
  if (status != 0)
    spdlog::error(
        "{}; the job stopped, and the checkpoints written before are kept (continue "
        "with qkv train --resume RUN_DIR)",
        failed.describe());
  return status;
}

int run_train(const TrainArgs& args) {
  const auto launch = LaunchEnvironment::from_environment();
  if (args.nproc > 1 && launch)
    throw std::invalid_argument("--nproc " + std::to_string(args.nproc) +
                                " under a launcher that already set WORLD_SIZE=" +
                                std::to_string(launch->world_size) + ": use one or the other");
  if (args.nproc > 1) return launch_local_job(args.nproc, args.worker_argv);
  if (launch && launch->rank != 0) spdlog::set_level(spdlog::level::warn);  // rank 0 speaks
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  TrainerOptions options;
  options.stop = &g_stop;
  options.after_checkpoint = report_after_checkpoint();
  options.launch = launch;

  std::unique_ptr<Trainer> trainer;
  if (!args.resume.empty()) {
    trainer = Trainer::resume(args.resume, args.overrides, options);
    start_runtime(static_cast<int>(trainer->config().runtime.threads));
  } else {
    auto overrides = args.overrides;
    if (!args.init_from.empty()) overrides.push_back("train.init_from=" + args.init_from);
    Config config = Config::load(args.config, overrides);
    start_runtime(static_cast<int>(config.runtime.threads));
    const auto source = adopt_init_from(config, overrides);
    if (source.model)
      spdlog::info("fine-tuning {} (step {}): its model and tokenizer replace the config's",
                   source.path, source.state.step);
    // One preparer per machine; the other ranks wait for it when they meet.
    if (!args.skip_prepare && (!launch || launch->local_rank == 0))
      prepare_with_progress(config, source.tokenizer.get());
    trainer = std::make_unique<Trainer>(config, options);
  }
  auto result = trainer->run();
  if (result.steps.empty()) return 0;  // the run was there already
  if (result.interrupted) {
    spdlog::info("continue with: qkv train --resume {}", result.run_dir);
    return 0;
  }
  spdlog::info(
      "done: {} steps in {:.1f} s (median {:.1f} ms/step); best val loss {:.4f} at step {}",
      result.final_step, result.wall_seconds, result.median_step_ms, result.best_val_loss,
      result.best_step);
  spdlog::info(
      "time: steps {:.1f} s, evaluation {:.1f} s, checkpoints {:.1f} s, other {:.1f} s",
      result.step_seconds, result.eval_seconds, result.checkpoint_seconds,
      result.wall_seconds - result.step_seconds - result.eval_seconds - result.checkpoint_seconds);
  spdlog::info("checkpoints: {}/best.pt (best val loss), {}", result.run_dir,
               result.last_checkpoint);
  return 0;
}

Checkpoint load_for_inference(const std::string& path, const RuntimeArgs& runtime,
                              const std::string& weights, bool decoding) {
  const auto format = parse_weight_format(weights);
  const torch::Device device(resolve_device(runtime.device));
  if (format != WeightFormat::kFloat32 && !device.is_cpu())
    throw std::invalid_argument("--weights " + weights + " packs weights for the CPU; on " +
                                device.str() + " use fp32");
  // Measured, int8 decoding of the large config: 402 tokens/s with the cores to OpenBLAS,
  // 664-720 with them to LibTorch's pool.
  start_runtime(runtime.threads, decoding && format != WeightFormat::kFloat32 ? CoreOwner::kLibTorch
                                                                              : CoreOwner::kBlas);
  auto ckpt = Checkpoint::load(path);
  ckpt.model->to(device);
  ckpt.model->eval();
  spdlog::info("loaded {} (step {}, {} tokenizer, vocab {})", ckpt.path, ckpt.state.step,
               ckpt.tokenizer->kind(), ckpt.tokenizer->vocab_size());
  if (format != WeightFormat::kFloat32) {
    const int64_t bytes = pack_for_inference(ckpt.model, format);
    spdlog::info("linear weights in {}: {:.1f} MB", weights, double(bytes) / 1e6);
  }
  return ckpt;
}

int run_generate(const GenerateArgs& args) {
  GenerationOptions options = args.options;
  options.validate();  // before the (slow) load: bad options fail at once
  if (args.num_samples <= 0)
    throw std::invalid_argument("--num-samples must be positive, got " +
                                std::to_string(args.num_samples));

  auto ckpt = load_for_inference(args.checkpoint, args.runtime, args.weights, /*decoding=*/true);
  const std::string prompt =
      args.prompt_file.empty() ? args.prompt : read_file_bytes(args.prompt_file);
  const auto ids = ckpt.tokenizer->encode_from(prompt, "prompt");
  const int64_t block = ckpt.config.model.block_size;
  if (static_cast<int64_t>(ids.size()) > block) {
    spdlog::warn(
        "the prompt has {} tokens, more than the context of {}: the model sees its last "
        "{} tokens",
        ids.size(), block, block);
  }
  if (ids.empty()) spdlog::info("empty prompt: starting from the tokenizer's start token");

  TextGenerator generator(ckpt.model, *ckpt.tokenizer);
  for (int n = 0; n < args.num_samples; ++n) {
    options.sampling.seed = args.options.sampling.seed + static_cast<uint64_t>(n);
    if (n > 0) std::fputs("\n---\n", stdout);
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    auto result = generator.generate(ids, options, [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    std::fputs("\n", stdout);
    std::fflush(stdout);
    spdlog::info("sample {}: {} tokens in {:.2f} s ({:.1f} tokens/s, KV cache {}){}", n + 1,
                 result.tokens.size(), result.seconds,
                 double(result.tokens.size()) / std::max(result.seconds, 1e-9),
                 options.use_kv_cache ? "on" : "off",
                 result.stopped ? ", stopped at a stop string" : "");
  }
  return 0;
}

namespace {

// The tokens `qkv eval --data` scores and the bytes of text they stand for (0 when unknown).
struct EvalTokens {
  std::vector<TokenId> tokens;
  int64_t bytes = 0;
};

// A prepared .bin token file (its dtype and byte counts from meta.json beside it), or raw text
// encoded with the checkpoint's tokenizer.
EvalTokens read_eval_tokens(const std::string& data, const Tokenizer& tokenizer) {
  if (!std::filesystem::is_regular_file(data))
    throw std::invalid_argument("--data " + data + ": file not found");
  EvalTokens out;
  if (std::filesystem::path(data).extension() == ".bin") {
    const auto dir = std::filesystem::path(data).parent_path().string();
    const auto meta = DatasetMeta::load(dir.empty() ? "." : dir);
    if (meta.vocab_size != tokenizer.vocab_size())
      throw std::invalid_argument(data + " was tokenized with a vocabulary of " +
                                  std::to_string(meta.vocab_size) + ", the checkpoint's has " +
                                  std::to_string(tokenizer.vocab_size()));
    // train.bin and val.bin are checked against meta.json (their byte counts give bits per
    // byte); another .bin beside it only against the vocabulary.
    const auto name = std::filesystem::path(data).filename().string();
    const bool described = name == "train.bin" || name == "val.bin";
    auto file = described ? meta.open_checked(name.substr(0, name.size() - 4))
                          : std::make_shared<TokenFile>(data, meta.dtype);
    file->check_ids_below(tokenizer.vocab_size());
    out.tokens.resize(file->size());
    if (file->size() > 0) file->read(0, file->size(), out.tokens.data());
    out.bytes = name == "train.bin" ? meta.train_bytes : name == "val.bin" ? meta.val_bytes : 0;
  } else {
    const std::string text = read_file_bytes(data);
    if (text.empty()) throw std::invalid_argument("--data " + data + " is empty");
    out.tokens = tokenizer.encode_from(text, data);
    out.bytes = static_cast<int64_t>(text.size());
  }
  if (out.tokens.size() < 2)
    throw std::invalid_argument("--data " + data + " has " + std::to_string(out.tokens.size()) +
                                " tokens; at least 2 are needed");
  // The first token is context only: its bytes are not scored.
  if (out.bytes > 0) out.bytes -= static_cast<int64_t>(tokenizer.decode({out.tokens[0]}).size());
  return out;
}

void print_perplexity(const EvalArgs& args, const Checkpoint& ckpt, const PerplexityResult& r) {
  const int64_t block = ckpt.config.model.block_size;
  const int64_t stride = args.options.stride > 0 ? args.options.stride : block;
  if (args.json) {
    nlohmann::json j = {
        {"checkpoint", ckpt.path},
        {"data", args.data},
        {"tokens_scored", r.tokens_scored},
        {"mean_nll", r.mean_nll},
        {"perplexity", r.perplexity},
        {"bytes", r.bytes},
        {"bits_per_byte", r.bytes > 0 ? nlohmann::json(r.bits_per_byte) : nlohmann::json()},
        {"stride", stride},
        {"block_size", block},
        {"tokens_per_s", r.tokens_per_s},
        {"seconds", r.seconds}};
    std::cout << j.dump() << std::endl;
    return;
  }
  std::printf("data:            %s\n", args.data.c_str());
  std::printf("tokens scored:   %lld (window %lld, stride %lld)\n", (long long)r.tokens_scored,
              (long long)block, (long long)stride);
  std::printf("mean NLL:        %.4f nats/token\n", r.mean_nll);
  std::printf("perplexity:      %.3f\n", r.perplexity);
  if (r.bytes > 0) std::printf("bits per byte:   %.4f\n", r.bits_per_byte);
  std::printf("speed:           %.0f tokens/s (%.2f s)\n", r.tokens_per_s, r.seconds);
}

}  // namespace

int run_eval(const EvalArgs& args) {
  args.options.validate();  // before the (slow) load: bad options fail at once
  auto ckpt = load_for_inference(args.checkpoint, args.runtime, args.weights);
  const auto data = read_eval_tokens(args.data, *ckpt.tokenizer);
  print_perplexity(args, ckpt,
                   evaluate_perplexity(ckpt.model, data.tokens, data.bytes, args.options));
  return 0;
}

int run_import(const ImportArgs& args) {
  check_export_target(args.out);  // before reading a large model
  const auto ckpt = import_hugging_face_gpt2(args.dir);
  write_imported_run(ckpt, args.out);
  const auto& m = ckpt.config.model;
  spdlog::info(
      "imported {} (GPT-2: {} layers, {} heads, d_model {}, context {}, vocabulary {}, "
      "{}, {} head) into {}/best.pt",
      args.dir, m.n_layer, m.n_head, m.d_model, m.block_size, m.vocab_size, m.activation,
      m.tie_weights ? "tied" : "untied", args.out);
  return 0;
}

int run_export(const ExportArgs& args) {
  const ExportFormat format = export_format_from_string(args.format);  // before the load
  check_export_target(args.out);
  auto ckpt = load_for_inference(args.checkpoint, RuntimeArgs{"cpu", 0});
  const ExportResult result = export_model(ckpt, format, args.out);
  for (const auto& note : result.notes) spdlog::info("note: {}", note);
  std::string files;
  for (const auto& f : result.files) files += (files.empty() ? "" : ", ") + f;
  spdlog::info("exported {} to {}/ ({})", ckpt.path, result.dir, files);
  if (format == ExportFormat::kHuggingFace)
    spdlog::info(
        "load it with transformers: GPT2LMHeadModel.from_pretrained(\"{}\"), "
        "AutoTokenizer.from_pretrained(\"{}\")",
        result.dir, result.dir);
  return 0;
}

}  // namespace qkv::cli
