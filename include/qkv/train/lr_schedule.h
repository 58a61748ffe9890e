#pragma once

#include <cstdint>

namespace qkv {

// Linear warm-up to lr over warmup_steps, then cosine decay to min_lr at decay_steps, then flat:
// the schedule nanoGPT uses, so results compare step for step.
struct LrSchedule {
  double lr;
  double min_lr;
  int64_t warmup_steps;
  int64_t decay_steps;

  double at(int64_t step) const;  // step counts from 0
};

}  // namespace qkv
