#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "qkv/config/config.h"
#include "qkv/data/batch_sampler.h"
#include "qkv/distributed/gradient_reducer.h"
#include "qkv/kernels/kernel_path.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/train/adamw.h"
#include "qkv/train/cuda_graph_step.h"
#include "qkv/train/step_stage.h"

namespace qkv {

struct StepOutcome {
  double loss = 0;          // mean over the micro-batches
  double grad_norm = 0;     // total gradient norm before clipping
  bool updated = false;     // false when the loss was not finite: nothing was changed
  double allreduce_ms = 0;  // data-parallel: time waiting for the gradients' all-reduce
};

// runtime.kernels resolved for the config's model ("auto" picks by LibTorch and dropout): the
// path TrainingStep takes for the loss and the optimizer, and the one to accelerate() the model
// it trains with.
KernelPath runtime_kernel_path(const Config& config);

// One optimizer step, the one thing that trains: for each of train.grad_accum_steps micro-batches
// a forward pass (under bf16 autocast when runtime.dtype says so), the loss and a backward pass
// weighted 1/grad_accum_steps; with a process group of several ranks, the gradients and the loss
// averaged over the ranks (GradientReducer); then clipping to train.grad_clip (0: none, the norm is
// still measured), the optimizer step and the gradients' reset. The trainer, `qkv bench` and the
// data-parallel trainer all run this. The model is trained as given: runtime.kernels picks the
// loss and the optimizer's route here, and the caller installs the matching modules
// (accelerate(model, runtime_kernel_path(config)), kernels/accelerate.h).
class TrainingStep {
 public:
  // `group`: the data-parallel ranks to average over (none: this process alone). CUDA graphs are
  // not used then: the collectives run outside the captured step.
  TrainingStep(TransformerLM model, AdamW& optimizer, const Config& config,
               std::shared_ptr<ProcessGroup> group = nullptr);
  ~TrainingStep();

  // Runs one step at learning rate `lr` on batches drawn from `next_batch`. A non-finite loss
  // leaves the weights and the optimizer state untouched and is returned for the caller to act
  // on. `on_stage` is told as each stage ends.
  StepOutcome run(const std::function<Batch()>& next_batch, double lr,
                  const StageHook& on_stage = {});

  // Whether steps now replay a captured CUDA graph (runtime.cuda_graph on a GPU, after the
  // first eager steps). A step with an on_stage hook always runs eagerly.
  bool replaying_graph() const;
  // Data-parallel: the bytes of gradients each rank all-reduces per step (0 alone).
  int64_t allreduce_bytes_per_step() const;

 private:
  // The micro-batches' forward and backward passes, each loss weighted 1/grad_accum_steps, batch
  // `micro` from micro_batch(micro) on the device. Returns the mean loss as a float64 device
  // scalar and waits for nothing: the eager step and the captured one both run it.
  torch::Tensor forward_backward(const std::function<Batch(int64_t)>& micro_batch,
                                 const StageHook& on_stage = {});
  // The step with every stage in the open, reading the loss before touching the weights.
  StepOutcome run_eager(const std::function<Batch()>& next_batch, double lr,
                        const StageHook& on_stage);
  // The same step queued on the device without waiting for it, for capture: the non-finite check
  // travels to the optimizer kernel as a flag.
  CudaGraphStep::Outputs queue_step(const torch::Tensor& x, const torch::Tensor& y,
                                    const torch::Tensor& lr);

  TransformerLM model_;
  AdamW& optimizer_;
  std::vector<torch::Tensor> params_;
  int64_t accum_steps_;
  double max_norm_;
  bool bf16_;
  torch::Device device_;
  KernelPath kernels_;                    // runtime.kernels
  std::unique_ptr<CudaGraphStep> graph_;  // set when the step is to be captured
  int64_t eager_steps_ = 0;
  torch::Tensor step_on_device_;  // the optimizer's step count, as the captured kernel reads it
  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<GradientReducer> reducer_;  // set with a group of several ranks
};

}  // namespace qkv
