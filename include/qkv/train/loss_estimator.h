#pragma once

#include <cstdint>
#include <memory>

#include <torch/types.h>

#include "qkv/data/token_file.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/runtime/captured_graph.h"

namespace qkv {

struct LossEstimatorOptions {
  int64_t batches = 200;     // eval.batches
  int64_t batch_size = 64;   // train.batch_size
  int64_t block_size = 256;  // model.block_size
  uint64_t seed = 0;         // the batches' own stream: the training stream is untouched
  int rank = 0, world_size = 1;
  bool bf16 = false;  // runtime.dtype
};

// The trainer's evaluation: the mean next-token loss of `model` over the same fixed batches every
// time, so that successive figures compare. The batches are drawn once and kept where the model
// runs; each is copied into one input in place and run through a CapturedGraph, so on a GPU an
// evaluation of 200 batches is 200 graph replays with no transfer from the host and one read at
// the end. The batches are those BatchSampler(tokens, batch_size, block_size, seed, rank,
// world_size) draws first: the figures are the ones the eager loop gave.
class LossEstimator {
 public:
  LossEstimator(TransformerLM model, std::shared_ptr<const TokenFile> tokens,
                const LossEstimatorOptions& options);
  ~LossEstimator();

  // Sum over this rank's batches of each batch's mean loss: a float64 scalar where the model
  // runs, not read back (data-parallel ranks add theirs before reading). The model is put in
  // eval mode for it and back in training mode after.
  torch::Tensor loss_sum();
  int64_t batches() const { return windows_.size(0); }

 private:
  TransformerLM model_;
  torch::Tensor windows_;      // (batches, B, T + 1) int32: every batch, where the model runs
  torch::Tensor x_in_, y_in_;  // (B, T) int64: the one batch the captured forward reads
  torch::Tensor total_;        // float64 scalar the captured forward adds to
  bool bf16_;
  std::unique_ptr<CapturedGraph> graph_;
};

}  // namespace qkv
