#pragma once

#include <cstdint>
#include <vector>

namespace qkv {

// One parameter's part of an AdamW step: its value, gradient and two moments (n floats each) and
// the constants of LibTorch's AdamW formula for this step.
struct AdamWSpan {
  float *param, *grad, *exp_avg, *exp_avg_sq;
  int64_t n;
  float decay;  // 1 - lr * weight_decay (exactly 1 without decay: x * 1 == x)
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float root_bias2;  // sqrt(1 - beta2^step)
  float eps;
  float step_size;  // lr / (1 - beta1^step)
};

// The sum of the squares of every span's gradient, accumulated in double, the spans taken as one
// range laid end to end and split evenly across LibTorch's threads.
double gradient_sum_of_squares(const std::vector<AdamWSpan>& spans);

// One AdamW update of every span, as LibTorch's AdamW computes it element by element, each
// gradient first multiplied by `grad_scale` and left so (as clip_grad_norm_ leaves it); split
// across threads as gradient_sum_of_squares is.
void adamw_update(const std::vector<AdamWSpan>& spans, float grad_scale);

}  // namespace qkv
