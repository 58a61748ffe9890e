#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include <torch/types.h>

#include "qkv/data/token_file.h"

namespace qkv {

struct Batch {
  torch::Tensor x;  // (B, T) int64 inputs
  torch::Tensor y;  // (B, T) int64 targets: x shifted left by one
};

// Draws B random windows of block_size + 1 tokens from a token file. Deterministic from the
// seed; its state is saved in checkpoints so a resumed run draws the same batches. Data-parallel
// ranks share one stream of windows and each reads its own share of every draw, so the job's
// batch is the same whatever the number of ranks (and the state is the same on every rank).
class BatchSampler {
 public:
  BatchSampler(std::shared_ptr<const TokenFile> tokens, int64_t batch_size, int64_t block_size,
               uint64_t seed, int rank = 0, int world_size = 1);

  Batch next();

  std::string state() const;
  void set_state(const std::string& state);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

 private:
  std::shared_ptr<const TokenFile> tokens_;
  int64_t batch_size_, block_size_;
  int rank_, world_size_;
  std::mt19937_64 rng_;
};

}  // namespace qkv
