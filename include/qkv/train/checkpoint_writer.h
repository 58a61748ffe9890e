#pragma once

#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <torch/optim/adamw.h>

#include "qkv/train/checkpoint.h"

namespace qkv {

// Writes a training run's checkpoints off the training thread. save() copies the weights and the
// optimizer's state into host memory that the writer keeps (pinned when they are on a GPU: one
// asynchronous copy and one wait, milliseconds), then serialises, hashes and writes the files on
// a thread of its own while training goes on. Each file is written as write_checkpoint writes it
// (temporary file, fsync, rename, SHA-256 trailer), so a crash still leaves the old file or the
// new one. One write is in flight at a time: save() and wait() first wait for the one before, and
// rethrow its error (a CheckpointError naming the file), which stops the run at the next
// checkpoint or at its end.
class CheckpointWriter {
 public:
  CheckpointWriter(TransformerLM model, torch::optim::AdamW* optimizer);
  ~CheckpointWriter();  // waits for the write in flight; its error, if any, is logged
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Snapshots the model and optimizer now and writes the same checkpoint to every path.
  void save(const std::vector<std::string>& paths, const Config& config, const Tokenizer& tokenizer,
            const TrainingState& state);
  // Returns once every file asked for is written; rethrows a failed write's error.
  void wait();

 private:
  void snapshot();

  TransformerLM model_;
  torch::optim::AdamW* optimizer_;
  TransformerLM host_model_{nullptr};  // the host copy, made at the first save
  std::unique_ptr<torch::optim::AdamW> host_optimizer_;
  std::thread thread_;
  std::exception_ptr error_;
};

}  // namespace qkv
