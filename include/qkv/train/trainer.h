#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qkv/config/config.h"
#include "qkv/distributed/launch_environment.h"
#include "qkv/train/run_directory.h"  // RunWriteError

namespace qkv {

// Training stopped because the loss stopped being a number; the last good checkpoint stays.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A fresh run was asked for in a directory that already holds a checkpoint (which it would
// overwrite): the run there can be resumed, or another directory chosen.
class RunDirectoryInUse : public std::invalid_argument {
 public:
  RunDirectoryInUse(const std::string& run_dir, const std::string& file);
  const std::string& run_dir() const { return run_dir_; }

 private:
  std::string run_dir_;
};

struct StepRecord {
  int64_t step = 0;  // 1-based: the optimizer step just completed
  double loss = 0, lr = 0, grad_norm = 0, ms = 0, tokens_per_s = 0;
};

struct EvalRecord {
  int64_t step = 0;
  double train_loss = 0, val_loss = 0;
};

struct TrainResult {
  std::string run_dir;
  std::string last_checkpoint;
  int64_t final_step = 0;
  bool interrupted = false;  // a stop was requested (SIGINT/SIGTERM); last.pt holds the state
  double best_val_loss = 0;
  int64_t best_step = -1;
  double wall_seconds = 0;
  double median_step_ms = 0;
  double step_seconds = 0;         // of wall_seconds: in training steps,
  double eval_seconds = 0;         // in evaluations,
  double checkpoint_seconds = 0;   // and in checkpoints on the training thread (they are written
                                   // on another)
  double median_allreduce_ms = 0;  // data-parallel: the gradients' all-reduce, per step
  std::vector<StepRecord> steps;   // the steps this call ran
  std::vector<EvalRecord> evals;
};

struct TrainerOptions {
  // Checked after every step; set it from a signal handler to stop cleanly.
  const std::atomic<bool>* stop = nullptr;
  // The data-parallel job this process is a rank of (none, or a world of 1: it trains alone).
  // The trainer joins it (runtime.backend, runtime.timeout_s) before reading any data; every rank
  // trains the same model on its share of each batch, and rank 0 alone writes the run directory.
  std::optional<LaunchEnvironment> launch;
  // Runs on rank 0 after a periodic last.pt is written when checkpoint.report is true (end_of_run
  // false) and once when run() ends, finished or stopped (true). What it returns, if anything, goes
  // to the run's log; a throw is logged as a warning and never ends training. The command line
  // writes report.html here (see report_after_checkpoint).
  std::function<std::string(const Config& config, bool end_of_run)> after_checkpoint;
};

// Trains a TransformerLM on a prepared dataset as the config says: AdamW with decoupled weight
// decay on matrices only, warm-up + cosine schedule, clipping, accumulation, periodic
// evaluation, atomic checkpoints (last.pt, best.pt), logs and metrics.jsonl in the run dir.
class Trainer {
 public:
  // A fresh run. The data directory must be prepared; the run directory must not hold a
  // checkpoint already (that would be overwritten: resume instead). The trainer holds the run
  // directory's lock (RunDirectoryLock) for its lifetime; the directory's files change only once
  // the first step has run.
  explicit Trainer(const Config& config, TrainerOptions options = {});
  // Continues RUN_DIR/last.pt with its stored config, `overrides` applied on top. Overrides of
  // model.*, tokenizer.* and data.* are refused (the checkpoint's weights, tokenizer and split
  // would silently stay); a train.max_steps at or below the checkpoint's step leaves nothing to
  // do, and run() then changes nothing.
  static std::unique_ptr<Trainer> resume(const std::string& run_dir,
                                         const std::vector<std::string>& overrides,
                                         TrainerOptions options = {});
  ~Trainer();

  TrainResult run();
  const Config& config() const;

 private:
  struct Impl;
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qkv
