#include "qkv/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <torch/nn/utils/clip_grad.h>

#include "qkv/kernels/adamw_update.h"
#include "qkv/runtime/torch_compat.h"

namespace qkv {

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

// Counts p's step and returns its part of the update: LibTorch's AdamW constants for this step.
AdamWSpan adamw_span(torch::Tensor& p, AdamWParamState& s, const AdamWOptions& o) {
  s.step(s.step() + 1);
  const auto [beta1, beta2] = o.betas();
  const double bias1 = 1 - std::pow(beta1, double(s.step())),
               bias2 = 1 - std::pow(beta2, double(s.step()));
  AdamWSpan span;
  span.param = p.data_ptr<float>();
  span.grad = p.grad().data_ptr<float>();
  span.exp_avg = s.exp_avg().data_ptr<float>();
  span.exp_avg_sq = s.exp_avg_sq().data_ptr<float>();
  span.n = p.numel();
  span.decay = float(1 - o.lr() * o.weight_decay());
  span.beta1 = float(beta1);
  span.beta2 = float(beta2);
  span.one_minus_beta1 = float(1 - beta1);
  span.one_minus_beta2 = float(1 - beta2);
  span.root_bias2 = float(std::sqrt(bias2));
  span.eps = float(o.eps());
  span.step_size = float(o.lr() / bias1);
  return span;
}

// Whether every parameter with a gradient, its gradient and its moments are contiguous float32
// CPU tensors, as adamw_update needs; adds those parameters to `stepped` (if given).
bool flat_update_applies(torch::optim::AdamW& optimizer,
                         std::vector<const void*>* stepped = nullptr) {
  for (auto& group : optimizer.param_groups()) {
    if (static_cast<const AdamWOptions&>(group.options()).amsgrad()) return false;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!cpu_float32(p) || !cpu_float32(p.grad())) return false;
      const auto& s = state_of(optimizer, p);
      if (!cpu_float32(s.exp_avg()) || !cpu_float32(s.exp_avg_sq())) return false;
      if (stepped) stepped->push_back(p.unsafeGetTensorImpl());
    }
  }
  return true;
}

// Every parameter with a gradient, each counted one step, as spans for adamw_update.
std::vector<AdamWSpan> adamw_spans(torch::optim::AdamW& optimizer) {
  std::vector<AdamWSpan> spans;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined())
        spans.push_back(adamw_span(p, state_of(optimizer, p),
                                   static_cast<const AdamWOptions&>(group.options())));
  return spans;
}

// Whether `params` with a gradient are exactly the optimizer's with one, and flat_update_applies:
// then clipping and the step can share the passes.
bool flat_clip_applies(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params) {
  std::vector<const void*> clipped, stepped;
  for (const auto& p : params)
    if (p.grad().defined()) clipped.push_back(p.unsafeGetTensorImpl());
  if (clipped.empty() || !flat_update_applies(optimizer, &stepped)) return false;
  std::sort(clipped.begin(), clipped.end());
  std::sort(stepped.begin(), stepped.end());
  return clipped == stepped && std::adjacent_find(clipped.begin(), clipped.end()) == clipped.end();
}

// The step as one adamw_update over all parameters.
void flat_update(torch::optim::AdamW& optimizer) {
  torch::NoGradGuard no_grad;
  adamw_update(adamw_spans(optimizer), 1.0f);
}

// clip_gradients then the step, as one pass that sums the gradients' squares and one that scales
// and updates, each over all parameters at once: per parameter, the two took ~10 tensor ops and a
// parallel_for each, most too small to split. With adamw_update's vectorised loop, the small
// config's optimizer stage went from 3.5 to 0.95 ms (AMD EPYC, 2 threads).
double flat_clip_and_update(torch::optim::AdamW& optimizer, double max_norm) {
  torch::NoGradGuard no_grad;
  const auto spans = adamw_spans(optimizer);
  const double norm = std::sqrt(gradient_sum_of_squares(spans));
  // clip_grad_norm_'s coefficient, multiplied in float as there; NaN stays NaN as there.
  const double ratio = max_norm / (norm + 1e-6);
  adamw_update(spans, float(std::isnan(ratio) ? ratio : std::min(ratio, 1.0)));
  return norm;
}

// One group's stepped parameters as LibTorch's fused kernel takes them, each step count already
// incremented, as a device scalar (one per distinct count: qkv steps all parameters together).
FusedAdamWGroup gather(torch::optim::AdamW& optimizer, torch::optim::OptimizerParamGroup& group,
                       bool count) {
  TORCH_CHECK(!static_cast<const AdamWOptions&>(group.options()).amsgrad(),
              "AdamW: amsgrad is not supported");
  FusedAdamWGroup g;
  std::map<int64_t, torch::Tensor> steps;
  for (auto& p : group.params()) {
    if (!p.grad().defined()) continue;
    auto& s = state_of(optimizer, p);
    g.params.push_back(p);
    g.grads.push_back(p.grad());
    g.exp_avgs.push_back(s.exp_avg());
    g.exp_avg_sqs.push_back(s.exp_avg_sq());
    if (!count) continue;
    s.step(s.step() + 1);
    auto& step = steps[s.step()];
    if (!step.defined())
      step = torch::full({}, double(s.step()),
                         torch::TensorOptions().dtype(torch::kFloat32).device(p.device()));
    g.steps.push_back(step);
  }
  return g;
}

}  // namespace

AdamW::Route AdamW::route_for(KernelPath path) {
  return path == KernelPath::kFused && !fused_adamw_available() ? Route::kFlat : Route::kLibTorch;
}

AdamW::AdamW(std::vector<torch::optim::OptimizerParamGroup> groups,
             torch::optim::AdamWOptions defaults, Route route)
    : torch::optim::AdamW(std::move(groups), std::move(defaults)), route_(route) {}

torch::Tensor AdamW::step(LossClosure closure) {
  TORCH_CHECK(!closure, "AdamW: a closure is not supported");
  if (route_ == Route::kFlat && flat_update_applies(*this))
    flat_update(*this);
  else
    libtorch_step();
  return {};
}

double AdamW::clip_and_step(const std::vector<torch::Tensor>& params, double max_norm) {
  if (route_ == Route::kFlat && flat_clip_applies(*this, params))
    return flat_clip_and_update(*this, max_norm);
  const double norm = clip_gradients(params, max_norm);
  step();
  return norm;
}

void AdamW::libtorch_step() {
  if (!fused_adamw_available()) return void(torch::optim::AdamW::step());
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups()) {
    auto g = gather(*this, group, /*count=*/true);
    if (g.params.empty()) continue;
    const auto& o = static_cast<const AdamWOptions&>(group.options());
    const auto [beta1, beta2] = o.betas();
    fused_adamw(g, o.lr(), beta1, beta2, o.weight_decay(), o.eps());
  }
}

void AdamW::step_on_device(const torch::Tensor& lr, torch::Tensor& step,
                           const torch::Tensor& found_inf) {
  torch::NoGradGuard no_grad;
  step.add_(1.0 - found_inf);  // the count the kernel's bias corrections read
  for (auto& group : param_groups()) {
    auto g = gather(*this, group, /*count=*/false);
    if (g.params.empty()) continue;
    g.steps.assign(g.params.size(), step);
    const auto& o = static_cast<const AdamWOptions&>(group.options());
    const auto [beta1, beta2] = o.betas();
    fused_adamw(g, lr, beta1, beta2, o.weight_decay(), o.eps(), found_inf);
  }
}

void AdamW::count_step() {
  for (auto& group : param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) {
        auto& s = state_of(*this, p);
        s.step(s.step() + 1);
      }
}

torch::Tensor clip_gradients_on_device(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  TORCH_CHECK(!grads.empty(), "clip_gradients: no parameter has a gradient");
  const auto norm = global_norm(grads);
  // The same coefficient as clip_grad_norm_, applied unconditionally: x * 1.0 == x.
  if (std::isfinite(max_norm)) foreach_mul_(grads, (max_norm / (norm + 1e-6)).clamp_max(1.0));
  return norm;
}

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  if (!fused_adamw_available()) return torch::nn::utils::clip_grad_norm_(params, max_norm);
  const bool any = std::any_of(params.begin(), params.end(),
                               [](const torch::Tensor& p) { return p.grad().defined(); });
  return any ? clip_gradients_on_device(params, max_norm).item<double>() : 0.0;
}

void move_optimizer_state(torch::optim::AdamW& optimizer, const torch::Device& device) {
  for (auto& entry : optimizer.state()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(*entry.second);
    if (s.exp_avg().defined()) s.exp_avg(s.exp_avg().to(device));
    if (s.exp_avg_sq().defined()) s.exp_avg_sq(s.exp_avg_sq().to(device));
    if (s.max_exp_avg_sq().defined()) s.max_exp_avg_sq(s.max_exp_avg_sq().to(device));
  }
}

void copy_optimizer_state(torch::optim::AdamW& from, const std::vector<torch::Tensor>& from_params,
                          torch::optim::AdamW& to, const std::vector<torch::Tensor>& to_params,
                          const std::function<torch::Tensor(const torch::Tensor&)>& allocate) {
  auto copy = [&](const torch::Tensor& source, torch::Tensor target) {
    if (!source.defined()) return torch::Tensor();
    if (!target.defined() || target.sizes() != source.sizes() ||
        (source.is_cuda() && !target.is_pinned()))
      target = allocate(source);
    target.copy_(source, /*non_blocking=*/true);
    return target;
  };
  auto& sources = from.state();
  for (size_t i = 0; i < from_params.size() && i < to_params.size(); ++i) {
    auto it = sources.find(state_key(from, from_params[i]));
    if (it == sources.end()) continue;  // no step has touched it yet
    const auto& s = static_cast<const AdamWParamState&>(*it->second);
    auto& t = state_of(to, to_params[i]);
    t.step(s.step());
    t.exp_avg(copy(s.exp_avg(), t.exp_avg()));
    t.exp_avg_sq(copy(s.exp_avg_sq(), t.exp_avg_sq()));
    t.max_exp_avg_sq(copy(s.max_exp_avg_sq(), t.max_exp_avg_sq()));
  }
}

}  // namespace qkv
