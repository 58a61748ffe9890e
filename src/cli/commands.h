#pragma once

#include <string>
#include <vector>

#include "qkv/bench/training_benchmark.h"
#include "qkv/eval/perplexity_evaluator.h"
#include "qkv/generate/text_generator.h"
#include "qkv/kernels/packed_weight.h"
#include "qkv/report/training_report.h"
#include "qkv/runtime/runtime_setup.h"
#include "qkv/serve/server.h"

namespace qkv {
struct Checkpoint;
}

// Each command's arguments: what only the command line has, plus the library's own option struct
// that the flags bind to directly.
namespace qkv::cli {

// Where a command that loads a checkpoint runs (--device, --threads).
struct RuntimeArgs {
  std::string device = "auto";
  int threads = 0;  // 0 = every core
};

struct PrepareArgs {
  std::string config;
  std::vector<std::string> overrides;
};

struct TrainArgs {
  std::string config;  // empty when resuming with the stored config
  std::vector<std::string> overrides;
  std::string resume;     // run directory
  std::string init_from;  // fine-tuning: train.init_from
  bool skip_prepare = false;
  int nproc = 1;                         // >1: run that many data-parallel workers here
  std::vector<std::string> worker_argv;  // the command line a worker runs (without --nproc)
};

// `--nproc N`: `worker_argv` again as N workers of one data-parallel job on this machine.
int launch_local_job(int nproc, const std::vector<std::string>& worker_argv);

struct GenerateArgs {
  std::string checkpoint;  // file or run directory
  std::string prompt;
  std::string prompt_file;
  int num_samples = 1;  // sample n uses seed options.sampling.seed + n
  GenerationOptions options;
  std::string weights = "fp32";  // fp32, bf16 or int8 (WeightFormat)
  RuntimeArgs runtime;
};

struct EvalArgs {
  std::string checkpoint;
  std::string data;  // raw text, or a prepared .bin token file
  bool json = false;
  PerplexityOptions options;
  std::string weights = "fp32";
  RuntimeArgs runtime;
};

struct BenchArgs {
  std::string config = "configs/shakespeare_char.yaml";
  std::vector<std::string> overrides;
  bool json = false;
  bool allreduce = false;  // time the gradients' all-reduce instead (2 or more ranks)
  int repeats = 10;
  int nproc = 1;
  std::vector<std::string> worker_argv;
  BenchmarkOptions options;
};

struct AttentionArgs {
  std::string checkpoint;
  std::string text;
  int64_t layer = 0;  // 1-based; 0 = every layer
  int64_t head = 0;   // 1-based; 0 = the heads' mean and then each head
  std::string out = "attention";
  RuntimeArgs runtime;
};

struct EmbedArgs {
  std::string checkpoint;
  std::vector<std::string> texts;
  std::string senses;  // a probe file: many sentences per sense
  std::string out = "embed";
  std::string word;
  int top_k = 3;
  bool json = false;
  RuntimeArgs runtime;
};

struct ReportArgs {
  std::string run_dir;
  TrainingReportOptions options;
  RuntimeArgs runtime;
};

struct ExportArgs {
  std::string checkpoint;  // file, run directory or safetensors export
  std::string format = "safetensors";
  std::string out;
};

struct ImportArgs {
  std::string dir;  // a Hugging Face GPT-2 directory
  std::string out;  // the run directory to write
};

struct ServeArgs {
  std::string checkpoint;  // run directory, file or safetensors export
  ServerOptions server;
  int threads = 0;
};

int run_prepare(const PrepareArgs& args);
int run_export(const ExportArgs& args);
int run_attention(const AttentionArgs& args);
int run_embed(const EmbedArgs& args);
int run_report(const ReportArgs& args);
int run_bench(const BenchArgs& args);
int run_generate(const GenerateArgs& args);
int run_eval(const EvalArgs& args);
int run_train(const TrainArgs& args);
int run_serve(const ServeArgs& args);
int run_import(const ImportArgs& args);

// Loads a checkpoint (file or run directory) onto the device in eval mode, after start_runtime,
// its linear weights packed in `weights` (fp32, bf16 or int8; the last two on the CPU only).
// Decoding with packed weights gives the cores to LibTorch's pool, which runs their kernels.
Checkpoint load_for_inference(const std::string& path, const RuntimeArgs& runtime,
                              const std::string& weights = "fp32", bool decoding = false);

// Sets threads from `threads` (0 = every core) and logs the version, LibTorch version, BLAS
// and thread counts.
RuntimeInfo start_runtime(int threads, CoreOwner owner = CoreOwner::kBlas);

}  // namespace qkv::cli
