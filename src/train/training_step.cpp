#include "qkv/train/training_step.h"

#include <cmath>

#include "qkv/runtime/autocast_scope.h"
#include "qkv/train/optimizer_setup.h"

namespace qkv {

TrainingStep::TrainingStep(TransformerLM model, torch::optim::Optimizer& optimizer,
                           const Config& config)
    : model_(std::move(model)),
      optimizer_(optimizer),
      params_(model_->parameters()),
      accum_steps_(config.train.grad_accum_steps),
      max_norm_(config.train.grad_clip > 0 ? config.train.grad_clip : INFINITY),
      bf16_(config.runtime.dtype == ComputeDtype::kBf16),
      device_(model_->lm_head_weight().device()) {}

StepOutcome TrainingStep::run(const std::function<Batch()>& next_batch, double lr,
                              const StageHook& on_stage) {
  auto stage_done = [&](StepStage s) {
    if (on_stage) on_stage(s);
  };
  set_learning_rate(optimizer_, lr);
  ForwardCapture capture;
  capture.on_stage = on_stage;
  StepOutcome out;
  double loss_sum = 0;
  for (int64_t micro = 0; micro < accum_steps_; ++micro) {
    auto batch = next_batch();
    torch::Tensor loss;
    {
      AutocastScope autocast(bf16_);
      auto logits = model_->forward(batch.x.to(device_), on_stage ? &capture : nullptr);
      loss = TransformerLMImpl::loss(logits.to(torch::kFloat32), batch.y.to(device_));
    }
    stage_done(StepStage::kLoss);
    (loss / double(accum_steps_)).backward();
    loss_sum += loss.item<double>();
    stage_done(StepStage::kBackward);
  }
  out.loss = loss_sum / double(accum_steps_);
  if (std::isfinite(out.loss)) {
    out.grad_norm = torch::nn::utils::clip_grad_norm_(params_, max_norm_);
    optimizer_.step();
    out.updated = true;
  }
  // Gradients to none rather than zero: the next backward writes instead of accumulating.
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  stage_done(StepStage::kOptimizer);
  return out;
}

}  // namespace qkv
