#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>

#include "qkv/config/config.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/tokenizer/tokenizer.h"

namespace qkv {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Everything besides weights and optimizer moments that a run needs to continue exactly.
struct TrainingState {
  int64_t step = 0;  // optimizer steps completed
  double best_val_loss = INFINITY;
  int64_t best_step = -1;
  std::string sampler_state;
  torch::Tensor torch_rng_state;  // CPU generator: dropout draws (rank 0's)
  int64_t world_size = 1;         // data-parallel ranks that wrote it
  torch::Tensor rank_rng_states;  // with several ranks: (world_size, bytes), each rank's generator
  std::string run_id;             // the run that wrote it (RunDirectory); "" from before ids
};

// A checkpoint read back: enough to generate, evaluate or resume with no other file.
struct Checkpoint {
  std::string path;
  Config config;
  std::unique_ptr<Tokenizer> tokenizer;
  TransformerLM model{nullptr};
  TrainingState state;
  std::string qkv_version;

  // Throws CheckpointError naming the file when it is missing, truncated or not a checkpoint.
  // `path` may be anything resolve() accepts.
  static Checkpoint load(const std::string& path);
  // Restores optimizer moments saved with the model (the optimizer must have the same groups).
  void load_optimizer(torch::optim::Optimizer& optimizer) const;

  // A checkpoint file, a run directory (then its best.pt, else last.pt), or a directory written
  // by export_model in the safetensors format (model_export.h).
  static std::string resolve(const std::string& file_or_run_dir);

 private:
  std::shared_ptr<torch::serialize::InputArchive> archive_;
};

// Writes a checkpoint that Checkpoint::load reads back, atomically: serialise in memory, write a
// temporary file beside the target, fsync, rename over the target, fsync the directory. A crash at
// any point leaves either the old file or the new one, never a torn one. `optimizer` may be null
// (a model for inference only).
void write_checkpoint(const std::string& path, TransformerLM& model,
                      torch::optim::Optimizer* optimizer, const Config& config,
                      const Tokenizer& tokenizer, const TrainingState& state);

// The bytes write_checkpoint writes (the archive and its SHA-256 trailer), and their atomic write:
// the two halves of write_checkpoint, for a writer that serialises on another thread
// (CheckpointWriter). The tokenizer comes as its kind and serialize() bytes.
std::string serialize_checkpoint(TransformerLM& model, torch::optim::Optimizer* optimizer,
                                 const Config& config, const std::string& tokenizer_kind,
                                 const std::string& tokenizer_bytes, const TrainingState& state);
void write_checkpoint_bytes(const std::string& path, const std::string& bytes);

}  // namespace qkv
