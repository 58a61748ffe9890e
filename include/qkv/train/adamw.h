#pragma once

#include <functional>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"

namespace qkv {

// LibTorch's AdamW (its options, its per-parameter state, its checkpoint format) with one of two
// routes for the update, chosen when it is made:
//   kLibTorch  LibTorch's own: its fused kernel (at::_fused_adamw_, one call per group) where the
//              LibTorch has one (runtime/torch_compat.h), else torch::optim::AdamW::step().
//   kFlat      qkv's: one vectorised pass over all float32 CPU parameters at once
//              (kernels/adamw_update.h), with gradient clipping's scale folded into it. It serves
//              float32 CPU tensors; any other parameter set takes LibTorch's route.
// Both read and write the same state, so checkpoints and resuming do not depend on the route.
class AdamW : public torch::optim::AdamW {
 public:
  enum class Route { kLibTorch, kFlat };

  // The route runtime.kernels asks for: kFlat for kFused where this LibTorch has no fused AdamW
  // kernel of its own (measured faster only there), kLibTorch otherwise.
  static Route route_for(KernelPath path);

  AdamW(std::vector<torch::optim::OptimizerParamGroup> groups, torch::optim::AdamWOptions defaults,
        Route route = Route::kLibTorch);

  Route route() const { return route_; }

  // One update of every parameter that has a gradient.
  torch::Tensor step(LossClosure closure = nullptr) override;

  // Scales the gradients of `params` so their total L2 norm is at most `max_norm` (infinity:
  // never), as torch::nn::utils::clip_grad_norm_, then step(); returns the norm before scaling.
  // On the flat route, when `params` are exactly this optimizer's, the two share the passes: one
  // sums the squares, one scales and updates.
  double clip_and_step(const std::vector<torch::Tensor>& params, double max_norm);

  // The update with everything it reads on the device, for a captured CUDA graph: the learning
  // rate `lr`, the step count `step` (incremented here unless skipped) and `found_inf`, 1 to skip
  // the whole update. LibTorch's fused kernel only (torch_compat's fused_adamw_available()).
  void step_on_device(const torch::Tensor& lr, torch::Tensor& step, const torch::Tensor& found_inf);

  // Adds one to every stepped parameter's count, after a replayed graph whose update was not
  // skipped: checkpoints then record the count the device used.
  void count_step();

 private:
  void libtorch_step();

  Route route_;
};

// The parameters' total gradient L2 norm, and their gradients scaled by
// min(1, max_norm / (norm + 1e-6)) unless max_norm is infinite, all on the device: no
// synchronisation. Needs fused_adamw_available() (LibTorch's foreach operations).
torch::Tensor clip_gradients_on_device(const std::vector<torch::Tensor>& params, double max_norm);

// torch::nn::utils::clip_grad_norm_, in a few fused calls where LibTorch has them: scales the
// gradients so their total L2 norm is at most `max_norm` and returns the norm before scaling.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// Moves the optimizer's moments to `device`, where the model is: a checkpoint's state is read onto
// the CPU, whatever device wrote it.
void move_optimizer_state(torch::optim::AdamW& optimizer, const torch::Device& device);

// Copies the state of `from` (moments and step counts, filed under `from_params`) into `to`'s
// state for the matching `to_params`, into tensors that `to` keeps between calls, without waiting
// for the device (`non_blocking`): the checkpoint writer's host copy of a GPU optimizer. Each
// new tensor of `to` is made by `allocate` from the source tensor.
void copy_optimizer_state(torch::optim::AdamW& from, const std::vector<torch::Tensor>& from_params,
                          torch::optim::AdamW& to, const std::vector<torch::Tensor>& to_params,
                          const std::function<torch::Tensor(const torch::Tensor&)>& allocate);

}  // namespace qkv
