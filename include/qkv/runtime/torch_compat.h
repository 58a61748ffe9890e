#pragma once

#include <vector>

#include <c10/core/DeviceType.h>
#include <torch/types.h>

namespace qkv {

// What differs between the LibTorch versions qkv builds with (Debian's 1.13, a wheel's 2.x),
// behind plain functions, so that no other file needs a version conditional. Each function that
// needs a newer LibTorch throws std::logic_error on an older one; the *_available() tests say
// which.

// Whether at::scaled_dot_product_attention with a `scale` argument exists (LibTorch 2.1+).
bool sdpa_available();

// softmax(q k^T * scale + mask) v in one call, which picks a flash or memory-efficient kernel
// where the device has one. q: (B, H, T, D), k and v: (B, H, S, D). `allowed` (T, S), where
// defined, is true where a query may attend; `causal` masks the plain lower triangle.
torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& allowed,
                                           double dropout_p, bool causal, double scale);

// Whether LibTorch's fused AdamW kernel runs on the CPU too (at::_fused_adamw_, 2.4+), with the
// foreach operations below.
bool fused_adamw_available();

// One AdamW step of at::_fused_adamw_ over parameters that share `steps` (one count per
// parameter, already incremented). lr as a number, or as a device tensor with `found_inf` (1
// skips the update): the form a captured CUDA graph replays.
struct FusedAdamWGroup {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
};
void fused_adamw(FusedAdamWGroup& group, double lr, double beta1, double beta2, double weight_decay,
                 double eps);
void fused_adamw(FusedAdamWGroup& group, const torch::Tensor& lr, double beta1, double beta2,
                 double weight_decay, double eps, const torch::Tensor& found_inf);

// The 2-norm of all `tensors` together, as a one-element tensor on their device.
torch::Tensor global_norm(const std::vector<torch::Tensor>& tensors);

// tensors[i] *= factor for every i, factor a one-element tensor on their device.
void foreach_mul_(std::vector<torch::Tensor>& tensors, const torch::Tensor& factor);

// bf16 autocast on `device`, on or off (the API was renamed in LibTorch 2.4), and whether it is on.
void set_bf16_autocast(c10::DeviceType device, bool on);
bool autocast_enabled(c10::DeviceType device);

}  // namespace qkv
