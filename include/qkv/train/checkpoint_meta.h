#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace qkv {

// The small JSON record a checkpoint carries beside its tensors: where the run stands and what
// wrote it. Plain data, parsed without LibTorch (a fuzz target feeds it arbitrary bytes).
struct CheckpointMeta {
  int64_t step = 0;  // optimizer steps completed
  double best_val_loss = INFINITY;
  int64_t best_step = -1;
  std::string sampler_state;
  int64_t world_size = 1;  // data-parallel ranks of the run that wrote it
  std::string tokenizer_kind;
  std::string qkv_version;
  std::string run_id;  // the run that wrote it; "" in checkpoints from before runs had ids

  std::string to_json() const;
  // Throws std::invalid_argument saying what is wrong: not JSON, not a qkv checkpoint's record,
  // a field of the wrong type or out of range.
  static CheckpointMeta parse(const std::string& json);
};

}  // namespace qkv
