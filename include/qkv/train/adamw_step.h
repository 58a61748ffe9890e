#pragma once

#include <functional>
#include <vector>

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"
#include "qkv/runtime/torch_compat.h"  // fused_adamw_available

namespace qkv {

// One AdamW update of every parameter that has a gradient. Where LibTorch has the fused kernel it
// updates each group in one call (on a GPU, one launch instead of ~10 per parameter). Otherwise,
// with `path` kFused and float32 CPU parameters, qkv's own loop updates each parameter in one
// pass; else it is optimizer.step(). All read and write the optimizer's own state, so
// checkpoints, resuming and the paths mix freely.
void adamw_step(torch::optim::AdamW& optimizer, KernelPath path = KernelPath::kReference);

// The same update with everything the kernel reads on the device, so that it can be captured in
// a CUDA graph and replayed: the learning rate `lr`, the step count `step` (incremented here
// unless skipped) and `found_inf`, a flag that skips the whole update when it is 1. Needs
// fused_adamw_available().
void adamw_step_on_device(torch::optim::AdamW& optimizer, const torch::Tensor& lr,
                          torch::Tensor& step, const torch::Tensor& found_inf);

// Adds one to every parameter's step count, as a step does: after a replayed graph whose update
// was not skipped, so that checkpoints record the count the device used.
void count_adamw_step(torch::optim::AdamW& optimizer);

// The parameters' total gradient L2 norm, and their gradients scaled by
// min(1, max_norm / (norm + 1e-6)) unless max_norm is infinite, all on the device: no
// synchronisation. Needs fused_adamw_available().
torch::Tensor clip_gradients_on_device(const std::vector<torch::Tensor>& params, double max_norm);

// Scales the gradients so their total L2 norm is at most `max_norm` (infinity: never) and returns
// the norm before scaling: torch::nn::utils::clip_grad_norm_, in a few fused calls where
// LibTorch has them.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// clip_gradients(params, max_norm) then adamw_step(optimizer, path); returns the norm. Without
// LibTorch's fused kernel, with `path` kFused, float32 CPU parameters and `params` the optimizer's
// own, it is one pass that sums the squares and one that scales and updates, each over all
// parameters at once.
double clip_and_adamw_step(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& params,
                           double max_norm, KernelPath path = KernelPath::kReference);

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
