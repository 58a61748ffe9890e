#include "qkv/runtime/torch_compat.h"

#include <stdexcept>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#define QKV_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||      \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace qkv {

namespace {
[[noreturn]] void needs(const char* what, const char* version) {
  throw std::logic_error(std::string(what) + " needs LibTorch " + version + " or later");
}
}  // namespace

bool sdpa_available() {
  return QKV_TORCH_AT_LEAST(2, 1);
}

torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v, const torch::Tensor& allowed,
                                           double dropout_p, bool causal, double scale) {
#if QKV_TORCH_AT_LEAST(2, 1)
  c10::optional<at::Tensor> mask;
  if (allowed.defined()) mask = allowed;
  return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, causal, scale);
#else
  (void)q, (void)k, (void)v, (void)allowed, (void)dropout_p, (void)causal, (void)scale;
  needs("scaled_dot_product_attention", "2.1");
#endif
}

bool fused_adamw_available() {
  return QKV_TORCH_AT_LEAST(2, 4);
}

void fused_adamw(FusedAdamWGroup& g, double lr, double beta1, double beta2, double weight_decay,
                 double eps) {
#if QKV_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, g.steps,
                    lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)g, (void)lr, (void)beta1, (void)beta2, (void)weight_decay, (void)eps;
  needs("the fused AdamW kernel", "2.4");
#endif
}

void fused_adamw(FusedAdamWGroup& g, const torch::Tensor& lr, double beta1, double beta2,
                 double weight_decay, double eps, const torch::Tensor& found_inf) {
#if QKV_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, g.steps,
                    lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false,
                    /*grad_scale=*/{}, found_inf);
#else
  (void)g, (void)lr, (void)beta1, (void)beta2, (void)weight_decay, (void)eps, (void)found_inf;
  needs("the fused AdamW kernel", "2.4");
#endif
}

torch::Tensor global_norm(const std::vector<torch::Tensor>& tensors) {
#if QKV_TORCH_AT_LEAST(2, 1)
  return at::linalg_vector_norm(at::stack(at::_foreach_norm(tensors, 2)), 2);
#else
  std::vector<torch::Tensor> norms;
  for (const auto& t : tensors) norms.push_back(t.norm());
  return at::stack(norms).norm();
#endif
}

void foreach_mul_(std::vector<torch::Tensor>& tensors, const torch::Tensor& factor) {
#if QKV_TORCH_AT_LEAST(2, 1)
  at::_foreach_mul_(tensors, factor);
#else
  for (auto& t : tensors) t.mul_(factor);
#endif
}

void set_bf16_autocast(c10::DeviceType device, bool on) {
#if QKV_TORCH_AT_LEAST(2, 4)
  if (on) at::autocast::set_autocast_dtype(device, at::kBFloat16);
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == c10::DeviceType::CUDA) {
    if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(on);
  } else {
    if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(on);
  }
#endif
}

bool autocast_enabled(c10::DeviceType device) {
#if QKV_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                         : at::autocast::is_cpu_enabled();
#endif
}

}  // namespace qkv
