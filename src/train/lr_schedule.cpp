#include "qkv/train/lr_schedule.h"

#include <cmath>

namespace qkv {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return lr * double(step + 1) / double(warmup_steps + 1);
  if (step > decay_steps || decay_steps <= warmup_steps) return min_lr;
  const double ratio = double(step - warmup_steps) / double(decay_steps - warmup_steps);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));  // 1 -> 0
  return min_lr + coeff * (lr - min_lr);
}

}  // namespace qkv
