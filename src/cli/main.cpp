// The qkv command line: argument parsing and error reporting over the qkv library. Flags bind to
// the library's own option structs; the library's errors get the command line's names here.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "qkv/config/config.h"
#include "qkv/data/data_preparer.h"
#include "qkv/distributed/local_launcher.h"
#include "qkv/distributed/process_group.h"
#include "qkv/runtime/invalid_option.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/train/trainer.h"

namespace {

using namespace qkv::cli;

// LibTorch errors carry a C++ backtrace; users get its first line only.
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

// The library names things as the library sees them (an option's field, an override, a state);
// the user gets them as typed on the command line, with the command that helps.
std::string user_message(const std::exception& e) {
  const std::string what = e.what();
  if (auto* o = dynamic_cast<const qkv::InvalidOption*>(&e)) {
    std::string flag = o->option();
    std::replace(flag.begin(), flag.end(), '_', '-');
    return "--" + flag + " " + o->requirement();
  }
  if (auto* c = dynamic_cast<const qkv::ConfigError*>(&e); c && !c->override_assignment().empty())
    return "--set " + c->override_assignment() + ": " + c->detail();
  if (auto* r = dynamic_cast<const qkv::RunDirectoryInUse*>(&e))
    return what + ": continue it with `qkv train --resume " + r->run_dir() +
           "` or start a new one with --set train.out_dir=DIR";
  if (dynamic_cast<const qkv::DataNotPrepared*>(&e))
    return what + " (run `qkv prepare CONFIG` first)";
  if (dynamic_cast<const qkv::DataFilesNotFound*>(&e))
    return what + " (scripts/get_data.sh fetches the default corpus)";
  if (auto* t = dynamic_cast<const c10::Error*>(&e)) return t->what_without_backtrace();
  if (auto* f = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    // "filesystem error: cannot create directories: Not a directory [PATH]" as
    // "cannot create directories PATH: Not a directory".
    std::string operation = what.substr(0, what.find(": ", what.find(": ") + 2));
    const std::string prefix = "filesystem error: ";
    if (operation.rfind(prefix, 0) == 0) operation = operation.substr(prefix.size());
    return operation + " " + f->path1().string() + ": " + f->code().message();
  }
  return what;
}

// A seed is a whole number in [0, 2^64): CLI11 would wrap "-1" and clamp larger numbers to
// 2^64 - 1, so every such seed gave the same text.
const CLI::Validator kSeed(
    [](std::string& text) -> std::string {
      const std::string expected = "expected a whole number from 0 to 18446744073709551615, got ";
      if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit)) return expected + text;
      errno = 0;
      std::strtoull(text.c_str(), nullptr, 10);
      return errno == ERANGE ? expected + text : std::string();
    },
    "SEED");

// A count of generated tokens: a whole number from 1 to 10^9. CLI11 clamps numbers past 2^63 - 1
// to it, which ran until killed, and takes "1e3" for no number.
constexpr int64_t kMaxNewTokens = 1000000000;
const CLI::Validator kTokenCount(
    [](std::string& text) -> std::string {
      const std::string expected =
          "expected a whole number from 1 to " + std::to_string(kMaxNewTokens) + ", got ";
      if (text.empty() || text.size() > 10 || !std::all_of(text.begin(), text.end(), ::isdigit))
        return expected + text;
      const long long n = std::stoll(text);
      return n < 1 || n > kMaxNewTokens ? expected + text : std::string();
    },
    "N");

void add_weights_option(CLI::App* cmd, std::string& weights) {
  cmd->add_option("--weights", weights,
                  "Linear weights on the CPU: fp32 (as trained), bf16 or int8 (one scale per "
                  "row; read 2x or 4x fewer bytes per token, see the README for the measured "
                  "speed and perplexity)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();
}

void add_runtime_options(CLI::App* cmd, RuntimeArgs& runtime) {
  cmd->add_option("--device", runtime.device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", runtime.threads, "Threads; 0 = every core")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
}

CLI::App* add_prepare(CLI::App& app, PrepareArgs& a) {
  auto* cmd = app.add_subcommand("prepare", "Tokenize a corpus into train/val token files");
  cmd->add_option("config", a.config, "YAML config file")->required();
  cmd->add_option("--set", a.overrides, "Override a key: section.key=value");
  return cmd;
}

CLI::App* add_train(CLI::App& app, TrainArgs& a) {
  auto* cmd = app.add_subcommand("train", "Train a model from a YAML config");
  cmd->add_option("config", a.config, "YAML config file");
  cmd->add_option("--set", a.overrides, "Override a key: section.key=value");
  cmd->add_option("--resume", a.resume, "Continue the run in this directory");
  cmd->add_option("--init-from", a.init_from,
                  "Fine-tune: start from this run's (or checkpoint's) weights, with its model and "
                  "tokenizer, a fresh optimizer and schedule (train.init_from)");
  cmd->add_flag("--no-prepare", a.skip_prepare, "Do not (re)prepare the data first");
  cmd->add_option("--nproc", a.nproc,
                  "Data-parallel workers to start on this machine (torchrun's --nproc-per-node); "
                  "under a launcher that sets RANK and WORLD_SIZE, leave it out")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  return cmd;
}

CLI::App* add_generate(CLI::App& app, GenerateArgs& a) {
  auto& o = a.options;
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint");
  cmd->add_option("checkpoint", a.checkpoint, "Checkpoint file or run directory (best.pt)")
      ->required();
  auto* prompt = cmd->add_option("--prompt", a.prompt, "Text to continue");
  cmd->add_option("--prompt-file", a.prompt_file, "File whose text to continue")->excludes(prompt);
  cmd->add_option("--max-new-tokens", o.max_new_tokens, "Tokens to generate")
      ->check(kTokenCount)
      ->capture_default_str();
  cmd->add_option("--temperature", o.sampling.temperature, "Softmax temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", o.sampling.top_k, "Keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--top-p", o.sampling.top_p, "Nucleus: keep the smallest set with this mass")
      ->capture_default_str();
  cmd->add_option("--seed", o.sampling.seed, "Sampling seed")->check(kSeed)->capture_default_str();
  cmd->add_option("--num-samples", a.num_samples, "Independent samples (seed, seed+1, ...)")
      ->capture_default_str();
  cmd->add_option("--stop", o.stop, "Stop at this string (repeatable)");
  cmd->add_flag_callback(
      "--no-kv-cache", [&o] { o.use_kv_cache = false; }, "Recompute the context every step");
  cmd->add_option("--context-keep", o.context_keep,
                  "Past the context length: keep the newest part F of the context and go on, "
                  "so the model sees between F and all of it (fast); 1 = slide by one token and "
                  "recompute the whole window every token (always a full context, slow)")
      ->capture_default_str();
  add_weights_option(cmd, a.weights);
  add_runtime_options(cmd, a.runtime);
  return cmd;
}

CLI::App* add_import(CLI::App& app, ImportArgs& a) {
  auto* cmd = app.add_subcommand(
      "import", "A Hugging Face GPT-2 directory (GPT2LMHeadModel, safetensors) as a qkv run");
  cmd->add_option("dir", a.dir,
                  "Directory with config.json, model.safetensors, vocab.json and "
                  "merges.txt (or tokenizer.json)")
      ->required();
  cmd->add_option("--out", a.out, "Run directory to write (must not exist or be empty)")
      ->required();
  return cmd;
}

CLI::App* add_serve(CLI::App& app, ServeArgs& a) {
  auto& o = a.server;
  auto* cmd = app.add_subcommand(
      "serve", "The explorer page and an OpenAI-compatible API (/v1/completions) over a model");
  cmd->add_option("checkpoint", a.checkpoint, "Run directory (all its checkpoints) or checkpoint")
      ->required();
  cmd->add_option("--host", o.host, "Address to listen on; another than loopback is logged")
      ->capture_default_str();
  cmd->add_option("--port", o.port, "Port; 0 = any free one (logged)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--api-key", o.api_key,
                  "Require 'Authorization: Bearer KEY' on /v1/ and /api/ (the page asks for it)");
  cmd->add_option("--max-tokens", o.max_tokens, "The most tokens a completion may ask for")
      ->check(kTokenCount)
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Larger request bodies get 413")
      ->check(CLI::Range(size_t(1024), size_t(1) << 30))
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "Compute threads; 0 = every core")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return cmd;
}

CLI::App* add_eval(CLI::App& app, EvalArgs& a) {
  auto* cmd = app.add_subcommand("eval", "Perplexity of a checkpoint on text");
  cmd->add_option("checkpoint", a.checkpoint, "Checkpoint file or run directory (best.pt)")
      ->required();
  cmd->add_option("--data", a.data, "Raw text file, or a prepared .bin token file")->required();
  cmd->add_option("--stride", a.options.stride, "Window stride; 0 = block_size")
      ->capture_default_str();
  cmd->add_option("--batch-size", a.options.batch_size, "Windows per forward pass")
      ->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object");
  add_weights_option(cmd, a.weights);
  add_runtime_options(cmd, a.runtime);
  return cmd;
}

CLI::App* add_bench(CLI::App& app, BenchArgs& a) {
  auto& o = a.options;
  auto* cmd = app.add_subcommand("bench", "Measure training, generation and evaluation speed");
  cmd->add_option("config", a.config, "YAML config file")->capture_default_str();
  cmd->add_option("--set", a.overrides, "Override a key: section.key=value");
  cmd->add_option("--steps", o.steps, "Measured training steps")->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Unmeasured steps first")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object");
  cmd->add_flag_callback(
      "--no-generation", [&o] { o.generation = false; }, "Skip generation and evaluation");
  cmd->add_option("--profile", o.profile,
                  "Write a Chrome trace of 5 more training steps here (a CUDA LibTorch's Kineto)");
  cmd->add_flag("--allreduce", a.allreduce,
                "Time the data-parallel gradient all-reduce instead (with --nproc N or under a "
                "launcher)");
  cmd->add_option("--repeats", a.repeats, "Timed all-reduces")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--nproc", a.nproc, "Workers to start on this machine (with --allreduce)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  return cmd;
}

CLI::App* add_attention(CLI::App& app, AttentionArgs& a) {
  auto* cmd = app.add_subcommand(
      "attention", "Attention weights of a text: tables, heatmaps (PNG, SVG) and JSON");
  cmd->add_option("checkpoint", a.checkpoint, "Checkpoint file or run directory")->required();
  cmd->add_option("--text", a.text, "The text to look at")->required();
  cmd->add_option("--layer", a.layer, "Layer to print (1-based); 0 = all")->capture_default_str();
  cmd->add_option("--head", a.head, "Head to print (1-based); 0 = mean and each head")
      ->capture_default_str();
  cmd->add_option("--out", a.out, "Directory for attention.json and the heatmaps")
      ->capture_default_str();
  add_runtime_options(cmd, a.runtime);
  return cmd;
}

CLI::App* add_embed(CLI::App& app, EmbedArgs& a) {
  auto* cmd = app.add_subcommand(
      "embed", "How one word's embedding changes with its context, layer by layer");
  cmd->add_option("checkpoint", a.checkpoint, "Checkpoint file or run directory")->required();
  auto* text =
      cmd->add_option("--text", a.texts, "A sentence holding the word (repeat: 2 or more)");
  auto* senses = cmd->add_option(
      "--senses", a.senses,
      "A file of sentences labelled by the word's sense (lines SENSE<TAB>SENTENCE, or "
      "WORD<TAB>SENSE<TAB>SENTENCE). Reported per level, from the word's position-centred "
      "vectors (each position's mean removed: the positional code every sentence shares there "
      "would dominate): distance ratio = mean distance between senses / within a sense (1: no "
      "sense shows); nearest centroid = share of sentences whose vector is closest to its own "
      "sense's centroid, leaving it out; cosine within/between = mean pairwise cosine, centred "
      "and raw. Draws the vectors' 2-D PCA per level, coloured by sense, into --out");
  text->excludes(senses);
  senses->excludes(text);
  cmd->add_option("--out", a.out, "Directory for the PCA plots (with --senses)")
      ->capture_default_str();
  cmd->add_option("--word", a.word, "The word to follow")->required();
  cmd->add_option("--top-k", a.top_k, "Attended tokens to list per layer")->capture_default_str();
  cmd->add_flag("--json", a.json, "Print one JSON object");
  add_runtime_options(cmd, a.runtime);
  return cmd;
}

CLI::App* add_report(CLI::App& app, ReportArgs& a) {
  auto* cmd =
      app.add_subcommand("report", "Write RUN_DIR/report.html: curves, sample, attention, config");
  cmd->add_option("run_dir", a.run_dir, "Run directory")->required();
  cmd->add_option("--text", a.options.attention_text, "Text for the attention heatmaps");
  cmd->add_option("--sample-tokens", a.options.sample_tokens, "Length of the sample")
      ->capture_default_str();
  cmd->add_option("--seed", a.options.seed, "Sampling seed")->check(kSeed)->capture_default_str();
  add_runtime_options(cmd, a.runtime);
  return cmd;
}

CLI::App* add_export(CLI::App& app, ExportArgs& a) {
  auto* cmd = app.add_subcommand(
      "export", "Write a model as safetensors (qkv reads it back) or for Hugging Face (GPT-2)");
  cmd->add_option("checkpoint", a.checkpoint, "Checkpoint file or run directory")->required();
  cmd->add_option("--format", a.format,
                  "safetensors: qkv's names, config and tokenizer; hf: GPT2LMHeadModel's layout")
      ->check(CLI::IsMember({"safetensors", "hf"}))
      ->capture_default_str();
  cmd->add_option("--out", a.out, "Directory to create (must not exist, or be empty)")->required();
  return cmd;
}

// "qkv trian": CLI11 would say only that a subcommand is required.
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg[0] == '-') continue;
    if (std::find(names.begin(), names.end(), arg) != names.end()) return "";
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    const std::string guess = qkv::closest_match(arg, names);
    return "unknown command '" + arg + "'" +
           (guess.empty() ? "" : " (did you mean '" + guess + "'?)") + "; the commands are " + list;
  }
  return "";
}

int check_and_run_train(const TrainArgs& train) {
  if (train.config.empty() && train.resume.empty()) {
    spdlog::error("train: give a config file, or --resume RUN_DIR");
    return 2;
  }
  if (!train.config.empty() && !train.resume.empty())
    spdlog::warn("--resume uses the config stored in {}; {} is ignored (use --set to change keys)",
                 train.resume, train.config);
  return run_train(train);
}

// The command line each --nproc worker runs: this one, without --nproc.
std::vector<std::string> worker_command_line(int argc, char** argv) {
  std::vector<std::string> args{"/proc/self/exe"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0) continue;
    args.push_back(a);
  }
  return args;
}

// In a job of several ranks, each line says whose it is.
void name_rank_in_logs(spdlog::logger& logger) {
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  if (rank && world && std::string(world) != "1")
    logger.set_pattern(std::string("[%H:%M:%S] rank ") + rank + " %^%l%$ %v");
}

// OpenBLAS chooses its kernels when it loads, before main: to give it better ones than its
// generic fallback, qkv starts itself again, once, with OPENBLAS_CORETYPE set.
void restart_with_better_blas_kernels(char** argv) {
  const std::string coretype = qkv::better_openblas_coretype();
  if (coretype.empty() || std::getenv("QKV_BLAS_RESTARTED")) return;
  setenv("OPENBLAS_CORETYPE", coretype.c_str(), 1);
  setenv("QKV_BLAS_RESTARTED", "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the old kernels
}

}  // namespace

int main(int argc, char** argv) {
  restart_with_better_blas_kernels(argv);
  // A file that reaches the size limit (ulimit -f) is a write error to report, not a crash.
  std::signal(SIGXFSZ, SIG_IGN);
  // Logs go to stderr so that stdout carries only a command's output (generated text, JSON).
  auto logger = spdlog::stderr_color_mt("qkv");
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  name_rank_in_logs(*logger);
  spdlog::set_default_logger(logger);

  CLI::App app{"qkv: a trainable mini-transformer on LibTorch"};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging");
  PrepareArgs prepare;
  TrainArgs train;
  GenerateArgs generate;
  EvalArgs eval;
  BenchArgs bench;
  AttentionArgs attention;
  EmbedArgs embed;
  ReportArgs report;
  ExportArgs export_args;
  ServeArgs serve;
  ImportArgs import_args;
  auto* prepare_cmd = add_prepare(app, prepare);
  auto* train_cmd = add_train(app, train);
  auto* generate_cmd = add_generate(app, generate);
  auto* eval_cmd = add_eval(app, eval);
  auto* bench_cmd = add_bench(app, bench);
  auto* attention_cmd = add_attention(app, attention);
  auto* embed_cmd = add_embed(app, embed);
  auto* report_cmd = add_report(app, report);
  auto* export_cmd = add_export(app, export_args);
  auto* serve_cmd = add_serve(app, serve);
  auto* import_cmd = add_import(app, import_args);
  app.set_version_flag("--version", [] {
    return std::string("qkv ") + QKV_VERSION + "\nLibTorch " + qkv::libtorch_version() + "\nBLAS " +
           qkv::describe_blas();
  });
  if (const std::string error = unknown_command(app, argc, argv); !error.empty()) {
    spdlog::error(error);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    spdlog::error(first_line(e.what()));             // one line, not CLI11's usage footer
    return 2;
  }
  if (verbose) spdlog::set_level(spdlog::level::debug);
  train.worker_argv = worker_command_line(argc, argv);
  bench.worker_argv = train.worker_argv;

  try {
    if (*prepare_cmd) return run_prepare(prepare);
    if (*train_cmd) return check_and_run_train(train);
    if (*generate_cmd) return run_generate(generate);
    if (*eval_cmd) return run_eval(eval);
    if (*bench_cmd) return run_bench(bench);
    if (*attention_cmd) return run_attention(attention);
    if (*embed_cmd) return run_embed(embed);
    if (*report_cmd) return run_report(report);
    if (*export_cmd) return run_export(export_args);
    if (*serve_cmd) return run_serve(serve);
    if (*import_cmd) return run_import(import_args);
  } catch (const std::exception& e) {
    // Under qkv's own launcher a lost rank is reported once, by the launcher, naming the rank
    // that left: the others' collective errors (Gloo's text) would say it again, worse.
    if (dynamic_cast<const qkv::CollectiveFailed*>(&e) && std::getenv("QKV_LOCAL_WORKER"))
      return qkv::kLostContactExit;
    spdlog::error(first_line(user_message(e)));
    return 1;
  }
  return 0;
}
