// The qkv command line: argument parsing and error reporting over the qkv library.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "commands.h"

namespace {

// LibTorch errors carry a C++ backtrace; users get its first line only.
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  // Logs go to stderr so that stdout carries only a command's output (generated text, JSON).
  auto logger = spdlog::stderr_color_mt("qkv");
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"qkv: a trainable mini-transformer on LibTorch"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");

  qkv::cli::PrepareArgs prepare;
  auto* prepare_cmd = app.add_subcommand("prepare", "Tokenize a corpus into train/val token files");
  prepare_cmd->add_option("config", prepare.config, "YAML config file")->required();
  prepare_cmd->add_option("--set", prepare.overrides, "Override a key: section.key=value");

  qkv::cli::TrainArgs train;
  auto* train_cmd = app.add_subcommand("train", "Train a model from a YAML config");
  train_cmd->add_option("config", train.config, "YAML config file");
  train_cmd->add_option("--set", train.overrides, "Override a key: section.key=value");
  train_cmd->add_option("--resume", train.resume, "Continue the run in this directory");
  train_cmd->add_flag("--no-prepare", train.skip_prepare, "Do not (re)prepare the data first");

  qkv::cli::GenerateArgs gen;
  auto* gen_cmd = app.add_subcommand("generate", "Generate text from a checkpoint");
  gen_cmd->add_option("checkpoint", gen.checkpoint, "Checkpoint file or run directory (best.pt)")
      ->required();
  auto* prompt_opt = gen_cmd->add_option("--prompt", gen.prompt, "Text to continue");
  gen_cmd->add_option("--prompt-file", gen.prompt_file, "File whose text to continue")
      ->excludes(prompt_opt);
  gen_cmd->add_option("--max-new-tokens", gen.max_new_tokens, "Tokens to generate")
      ->capture_default_str();
  gen_cmd->add_option("--temperature", gen.temperature, "Softmax temperature; 0 = greedy")
      ->capture_default_str();
  gen_cmd->add_option("--top-k", gen.top_k, "Keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  gen_cmd->add_option("--top-p", gen.top_p, "Nucleus: keep the smallest set with this mass")
      ->capture_default_str();
  gen_cmd->add_option("--seed", gen.seed, "Sampling seed")->capture_default_str();
  gen_cmd->add_option("--num-samples", gen.num_samples, "Independent samples (seed, seed+1, ...)")
      ->capture_default_str();
  gen_cmd->add_option("--stop", gen.stop, "Stop at this string (repeatable)");
  gen_cmd->add_flag("--no-kv-cache", gen.no_kv_cache, "Recompute the context every step");
  gen_cmd->add_option("--device", gen.device, "auto, cpu or cuda")->capture_default_str();
  gen_cmd->add_option("--threads", gen.threads, "Threads; 0 = every core")->capture_default_str();

  qkv::cli::EvalArgs ev;
  auto* eval_cmd = app.add_subcommand("eval", "Perplexity of a checkpoint on text");
  eval_cmd->add_option("checkpoint", ev.checkpoint, "Checkpoint file or run directory (best.pt)")
      ->required();
  eval_cmd->add_option("--data", ev.data, "Raw text file, or a prepared .bin token file")
      ->required();
  eval_cmd->add_option("--stride", ev.stride, "Window stride; 0 = block_size")
      ->capture_default_str();
  eval_cmd->add_option("--batch-size", ev.batch_size, "Windows per forward pass")
      ->capture_default_str();
  eval_cmd->add_flag("--json", ev.json, "Print one JSON object");
  eval_cmd->add_option("--device", ev.device, "auto, cpu or cuda")->capture_default_str();
  eval_cmd->add_option("--threads", ev.threads, "Threads; 0 = every core")->capture_default_str();

  qkv::cli::BenchArgs bench;
  auto* bench_cmd =
      app.add_subcommand("bench", "Measure training, generation and evaluation speed");
  bench_cmd->add_option("config", bench.config, "YAML config file")->capture_default_str();
  bench_cmd->add_option("--set", bench.overrides, "Override a key: section.key=value");
  bench_cmd->add_option("--steps", bench.steps, "Measured training steps")->capture_default_str();
  bench_cmd->add_option("--warmup", bench.warmup, "Unmeasured steps first")->capture_default_str();
  bench_cmd->add_flag("--json", bench.json, "Print one JSON object");
  bench_cmd->add_flag("--no-generation", bench.no_generation, "Skip generation and evaluation");

  qkv::cli::AttentionArgs attn;
  auto* attn_cmd = app.add_subcommand(
      "attention", "Attention weights of a text: tables, heatmaps (PNG, SVG) and JSON");
  attn_cmd->add_option("checkpoint", attn.checkpoint, "Checkpoint file or run directory")
      ->required();
  attn_cmd->add_option("--text", attn.text, "The text to look at")->required();
  attn_cmd->add_option("--layer", attn.layer, "Layer to print (1-based); 0 = all")
      ->capture_default_str();
  attn_cmd->add_option("--head", attn.head, "Head to print (1-based); 0 = mean and each head")
      ->capture_default_str();
  attn_cmd->add_option("--out", attn.out, "Directory for attention.json and the heatmaps")
      ->capture_default_str();
  attn_cmd->add_option("--device", attn.device, "auto, cpu or cuda")->capture_default_str();
  attn_cmd->add_option("--threads", attn.threads, "Threads; 0 = every core")->capture_default_str();

  qkv::cli::EmbedArgs embed;
  auto* embed_cmd = app.add_subcommand(
      "embed", "How one word's embedding changes with its context, layer by layer");
  embed_cmd->add_option("checkpoint", embed.checkpoint, "Checkpoint file or run directory")
      ->required();
  embed_cmd->add_option("--text", embed.texts, "A sentence holding the word (repeat: 2 or more)")
      ->required();
  embed_cmd->add_option("--word", embed.word, "The word to follow")->required();
  embed_cmd->add_option("--top-k", embed.top_k, "Attended tokens to list per layer")
      ->capture_default_str();
  embed_cmd->add_flag("--json", embed.json, "Print one JSON object");
  embed_cmd->add_option("--device", embed.device, "auto, cpu or cuda")->capture_default_str();
  embed_cmd->add_option("--threads", embed.threads, "Threads; 0 = every core")
      ->capture_default_str();

  qkv::cli::ReportArgs report;
  auto* report_cmd =
      app.add_subcommand("report", "Write RUN_DIR/report.html: curves, sample, attention, config");
  report_cmd->add_option("run_dir", report.run_dir, "Run directory")->required();
  report_cmd->add_option("--text", report.text, "Text for the attention heatmaps");
  report_cmd->add_option("--sample-tokens", report.sample_tokens, "Length of the sample")
      ->capture_default_str();
  report_cmd->add_option("--seed", report.seed, "Sampling seed")->capture_default_str();
  report_cmd->add_option("--threads", report.threads, "Threads; 0 = every core")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (verbose) spdlog::set_level(spdlog::level::debug);

  try {
    if (*prepare_cmd) return qkv::cli::run_prepare(prepare);
    if (*gen_cmd) return qkv::cli::run_generate(gen);
    if (*eval_cmd) return qkv::cli::run_eval(ev);
    if (*attn_cmd) return qkv::cli::run_attention(attn);
    if (*embed_cmd) return qkv::cli::run_embed(embed);
    if (*report_cmd) return qkv::cli::run_report(report);
    if (*bench_cmd) {
      if (bench.steps <= 0) throw std::invalid_argument("--steps must be positive");
      return qkv::cli::run_bench(bench);
    }
    if (*train_cmd) {
      if (train.config.empty() && train.resume.empty()) {
        spdlog::error("train: give a config file, or --resume RUN_DIR");
        return 2;
      }
      if (!train.config.empty() && !train.resume.empty())
        spdlog::warn(
            "--resume uses the config stored in {}; {} is ignored (use --set to change "
            "keys)",
            train.resume, train.config);
      return qkv::cli::run_train(train);
    }
  } catch (const c10::Error& e) {
    spdlog::error(first_line(e.what_without_backtrace()));
    return 1;
  } catch (const std::exception& e) {
    spdlog::error(first_line(e.what()));
    return 1;
  }
  return 0;
}
