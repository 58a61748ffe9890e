#pragma once

#include <functional>
#include <vector>

#include <torch/optim/optimizer.h>

#include "qkv/config/config.h"
#include "qkv/data/batch_sampler.h"
#include "qkv/model/step_stage.h"
#include "qkv/model/transformer_lm.h"

namespace qkv {

struct StepOutcome {
  double loss = 0;       // mean over the micro-batches
  double grad_norm = 0;  // total gradient norm before clipping
  bool updated = false;  // false when the loss was not finite: nothing was changed
};

// One optimizer step, the one thing that trains: for each of train.grad_accum_steps micro-batches
// a forward pass (under bf16 autocast when runtime.dtype says so), the loss and a backward pass
// weighted 1/grad_accum_steps; then clipping to train.grad_clip (0: none, the norm is still
// measured), the optimizer step and the gradients' reset. The trainer, `qkv bench` and the
// data-parallel trainer all run this.
class TrainingStep {
 public:
  TrainingStep(TransformerLM model, torch::optim::Optimizer& optimizer, const Config& config);

  // Runs one step at learning rate `lr` on batches drawn from `next_batch`. A non-finite loss
  // leaves the weights and the optimizer state untouched and is returned for the caller to act
  // on. `on_stage` is told as each stage ends.
  StepOutcome run(const std::function<Batch()>& next_batch, double lr,
                  const StageHook& on_stage = {});

 private:
  TransformerLM model_;
  torch::optim::Optimizer& optimizer_;
  std::vector<torch::Tensor> params_;
  int64_t accum_steps_;
  double max_norm_;
  bool bf16_;
  torch::Device device_;
};

}  // namespace qkv
