#include "qkv/train/adamw_step.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include <ATen/Parallel.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/version.h>

// The fused AdamW kernel has a CPU implementation from LibTorch 2.4 on (CUDA from 2.0).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define QKV_HAVE_FUSED_ADAMW 1
#endif

namespace qkv {

bool fused_adamw_available() {
#ifdef QKV_HAVE_FUSED_ADAMW
  return true;
#else
  return false;
#endif
}

namespace {

using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

// The key LibTorch files a parameter's state under: its TensorImpl's address, as a string before
// LibTorch 2.0 and as a pointer since.
// (A template so that only the branch this LibTorch needs is compiled.)
template <typename Optimizer>
auto state_key(Optimizer& optimizer, const torch::Tensor& p) {
  using Key = typename std::decay_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;  // as c10::guts::to_string, gone from LibTorch 2.x
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else
    return Key(p.unsafeGetTensorImpl());
}

// The state LibTorch's AdamW would create for p on its first step.
AdamWParamState& state_of(torch::optim::AdamW& optimizer, const torch::Tensor& p) {
  auto& states = optimizer.state();
  auto it = states.find(state_key(optimizer, p));
  if (it == states.end()) {
    auto s = std::make_unique<AdamWParamState>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    it = states.emplace(state_key(optimizer, p), std::move(s)).first;
  }
  return static_cast<AdamWParamState&>(*it->second);
}

bool cpu_float32(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous();
}

// LibTorch's AdamW update of one parameter, written as one pass over p, g, m and v instead of
// ~8 tensor ops that each read and write them all: the same formula in the same order.
void cpu_adamw_update(torch::Tensor& p, const torch::Tensor& g, AdamWParamState& s,
                      const AdamWOptions& o) {
  s.step(s.step() + 1);
  const auto [beta1, beta2] = o.betas();
  const double bias1 = 1 - std::pow(beta1, double(s.step())),
               bias2 = 1 - std::pow(beta2, double(s.step()));
  const float decay = float(1 - o.lr() * o.weight_decay()), b1 = float(beta1), b2 = float(beta2),
              one_b1 = float(1 - beta1), one_b2 = float(1 - beta2),
              root_bias2 = float(std::sqrt(bias2)), eps = float(o.eps()),
              step_size = float(o.lr() / bias1);
  float *pp = p.data_ptr<float>(), *mp = s.exp_avg().data_ptr<float>(),
        *vp = s.exp_avg_sq().data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  const bool decays = o.weight_decay() != 0;  // LibTorch multiplies only then
  at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = gp[i];
      if (decays) pp[i] *= decay;
      mp[i] = mp[i] * b1 + gi * one_b1;
      vp[i] = vp[i] * b2 + one_b2 * gi * gi;
      pp[i] -= step_size * (mp[i] / (std::sqrt(vp[i]) / root_bias2 + eps));
    }
  });
}

// The whole step through cpu_adamw_update when every parameter with a gradient, its gradient and
// its moments are contiguous float32 CPU tensors; false (nothing done) otherwise.
[[maybe_unused]] bool cpu_adamw_step(torch::optim::AdamW& optimizer) {
  for (auto& group : optimizer.param_groups()) {
    if (static_cast<const AdamWOptions&>(group.options()).amsgrad()) return false;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!cpu_float32(p) || !cpu_float32(p.grad())) return false;
      const auto& s = state_of(optimizer, p);
      if (!cpu_float32(s.exp_avg()) || !cpu_float32(s.exp_avg_sq())) return false;
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined())
        cpu_adamw_update(p, p.grad(), state_of(optimizer, p),
                         static_cast<const AdamWOptions&>(group.options()));
  return true;
}

}  // namespace

#ifdef QKV_HAVE_FUSED_ADAMW
namespace {

// One group's parameters sharing one step count (the trainer steps them all together), so the
// kernel reads one step tensor for all of them.
struct FusedGroup {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  int64_t step = 0;
  bool uniform_steps = true;
};

FusedGroup gather(torch::optim::AdamW& optimizer, torch::optim::OptimizerParamGroup& group) {
  TORCH_CHECK(!static_cast<const AdamWOptions&>(group.options()).amsgrad(),
              "adamw_step: amsgrad is not supported");
  FusedGroup g;
  for (auto& p : group.params()) {
    if (!p.grad().defined()) continue;
    auto& s = state_of(optimizer, p);
    if (!g.params.empty() && s.step() != g.step) g.uniform_steps = false;
    g.step = s.step();
    g.params.push_back(p);
    g.grads.push_back(p.grad());
    g.exp_avgs.push_back(s.exp_avg());
    g.exp_avg_sqs.push_back(s.exp_avg_sq());
  }
  return g;
}

void count_step(torch::optim::AdamW& optimizer, const FusedGroup& g) {
  for (auto& p : g.params) {
    auto& s = state_of(optimizer, p);
    s.step(s.step() + 1);
  }
}

void fused_group_step(torch::optim::AdamW& optimizer, const FusedGroup& g, const AdamWOptions& o) {
  if (g.params.empty()) return;
  count_step(optimizer, g);
  const auto step =
      torch::full({}, double(g.step + 1),
                  torch::TensorOptions().dtype(torch::kFloat32).device(g.params.front().device()));
  const std::vector<torch::Tensor> steps(g.params.size(), step);
  const auto [beta1, beta2] = o.betas();
  at::_fused_adamw_(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps,
                    o.lr(), beta1, beta2, o.weight_decay(), o.eps(), /*amsgrad=*/false,
                    /*maximize=*/false);
}

}  // namespace
#endif

void adamw_step(torch::optim::AdamW& optimizer, KernelPath path) {
#ifdef QKV_HAVE_FUSED_ADAMW
  (void)path;  // LibTorch's own fused kernel serves both paths
  torch::NoGradGuard no_grad;
  std::vector<FusedGroup> groups;
  for (auto& group : optimizer.param_groups()) groups.push_back(gather(optimizer, group));
  // Parameters of one group at different step counts: never in qkv's own runs, where all step
  // together; LibTorch's own step handles them, once for every group.
  if (!std::all_of(groups.begin(), groups.end(),
                   [](const FusedGroup& g) { return g.uniform_steps; }))
    return void(optimizer.step());
  for (size_t i = 0; i < groups.size(); ++i)
    fused_group_step(optimizer, groups[i],
                     static_cast<const AdamWOptions&>(optimizer.param_groups()[i].options()));
#else
  if (path == KernelPath::kFused && cpu_adamw_step(optimizer)) return;
  optimizer.step();
#endif
}

void adamw_step_on_device(torch::optim::AdamW& optimizer, const torch::Tensor& lr,
                          torch::Tensor& step, const torch::Tensor& found_inf) {
#ifdef QKV_HAVE_FUSED_ADAMW
  torch::NoGradGuard no_grad;
  step.add_(1.0 - found_inf);  // the count the kernel's bias corrections read
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const AdamWOptions&>(group.options());
    FusedGroup g = gather(optimizer, group);
    if (g.params.empty()) continue;
    const std::vector<torch::Tensor> steps(g.params.size(), step);
    const auto [beta1, beta2] = o.betas();
    at::_fused_adamw_(g.params, g.grads, g.exp_avgs, g.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps,
                      lr, beta1, beta2, o.weight_decay(), o.eps(), /*amsgrad=*/false,
                      /*maximize=*/false, /*grad_scale=*/{}, found_inf);
  }
#else
  (void)optimizer, (void)lr, (void)step, (void)found_inf;
  throw std::logic_error("adamw_step_on_device needs LibTorch 2.4 or later");
#endif
}

void count_adamw_step(torch::optim::AdamW& optimizer) {
#ifdef QKV_HAVE_FUSED_ADAMW
  for (auto& group : optimizer.param_groups()) count_step(optimizer, gather(optimizer, group));
#else
  (void)optimizer;
#endif
}

torch::Tensor clip_gradients_on_device(const std::vector<torch::Tensor>& params, double max_norm) {
#ifdef QKV_HAVE_FUSED_ADAMW
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  TORCH_CHECK(!grads.empty(), "clip_gradients: no parameter has a gradient");
  const auto norm = at::linalg_vector_norm(at::stack(at::_foreach_norm(grads, 2)), 2);
  // The same coefficient as clip_grad_norm_, applied unconditionally: x * 1.0 == x.
  if (std::isfinite(max_norm)) at::_foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp_max(1.0));
  return norm;
#else
  (void)params, (void)max_norm;
  throw std::logic_error("clip_gradients_on_device needs LibTorch 2.4 or later");
#endif
}

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
#ifdef QKV_HAVE_FUSED_ADAMW
  const bool any = std::any_of(params.begin(), params.end(),
                               [](const torch::Tensor& p) { return p.grad().defined(); });
  return any ? clip_gradients_on_device(params, max_norm).item<double>() : 0.0;
#else
  return torch::nn::utils::clip_grad_norm_(params, max_norm);
#endif
}

void move_optimizer_state(torch::optim::AdamW& optimizer, const torch::Device& device) {
  for (auto& entry : optimizer.state()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*entry.second);
    if (s.exp_avg().defined()) s.exp_avg(s.exp_avg().to(device));
    if (s.exp_avg_sq().defined()) s.exp_avg_sq(s.exp_avg_sq().to(device));
    if (s.max_exp_avg_sq().defined()) s.max_exp_avg_sq(s.max_exp_avg_sq().to(device));
  }
}

}  // namespace qkv
