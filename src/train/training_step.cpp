#include "qkv/train/training_step.h"

#include <chrono>
#include <cmath>

#include "qkv/kernels/accelerate.h"
#include "qkv/runtime/autocast_scope.h"
#include "qkv/train/adamw.h"
#include "qkv/train/cuda_graph_step.h"
#include "qkv/train/optimizer_setup.h"

namespace qkv {

namespace {
// Eager steps before the capture: they create the optimizer's state and let cuBLAS and the
// allocator settle, so that the captured step is the steady one.
constexpr int64_t kEagerStepsBeforeCapture = 2;
}  // namespace

KernelPath runtime_kernel_path(const Config& config) {
  return kernel_path_from_string(config.runtime.kernels, config.model.dropout > 0);
}

TrainingStep::TrainingStep(TransformerLM model, AdamW& optimizer, const Config& config,
                           std::shared_ptr<ProcessGroup> group)
    : model_(std::move(model)),
      optimizer_(optimizer),
      params_(model_->parameters()),
      accum_steps_(config.train.grad_accum_steps),
      max_norm_(config.train.grad_clip > 0 ? config.train.grad_clip : INFINITY),
      bf16_(config.runtime.dtype == ComputeDtype::kBf16),
      device_(model_->lm_head_weight().device()),
      kernels_(runtime_kernel_path(config)),
      group_(std::move(group)) {
  if (group_ && group_->world_size() > 1) {
    GradientReducerOptions options;
    options.bucket_bytes = config.runtime.bucket_mb << 20;
    options.overlap = config.runtime.overlap_allreduce;
    reducer_ = std::make_unique<GradientReducer>(params_, group_, options);
  }
  if (!reducer_ && config.runtime.cuda_graph && device_.is_cuda() && CudaGraphStep::available() &&
      fused_adamw_available())
    graph_ = std::make_unique<CudaGraphStep>(
        [this](const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& lr) {
          return queue_step(x, y, lr);
        });
}

TrainingStep::~TrainingStep() = default;

bool TrainingStep::replaying_graph() const {
  return graph_ && graph_->captured();
}

int64_t TrainingStep::allreduce_bytes_per_step() const {
  return reducer_ ? reducer_->bytes_per_step() : 0;
}

StepOutcome TrainingStep::run(const std::function<Batch()>& next_batch, double lr,
                              const StageHook& on_stage) {
  if (!graph_) return run_eager(next_batch, lr, on_stage);
  if (on_stage || eager_steps_ < kEagerStepsBeforeCapture) {  // stages are timed eagerly
    StepOutcome out;
    graph_->on_stream([&] { out = run_eager(next_batch, lr, on_stage); });
    ++eager_steps_;
    return out;
  }
  std::vector<torch::Tensor> xs, ys;
  for (int64_t micro = 0; micro < accum_steps_; ++micro) {
    auto batch = next_batch();
    xs.push_back(batch.x);
    ys.push_back(batch.y);
  }
  if (!graph_->captured()) {
    // The step count the device reads from here on, continuing the optimizer's own.
    int64_t done = 0;
    for (auto& entry : optimizer_.state())
      done = static_cast<torch::optim::AdamWParamState&>(*entry.second).step();
    step_on_device_ = torch::full({}, double(done), torch::TensorOptions().device(device_));
  }
  StepOutcome out;
  std::tie(out.loss, out.grad_norm) = graph_->replay(torch::stack(xs), torch::stack(ys), lr);
  out.updated = std::isfinite(out.loss);
  if (out.updated) optimizer_.count_step();
  return out;
}

torch::Tensor TrainingStep::forward_backward(const std::function<Batch(int64_t)>& micro_batch,
                                             const StageHook& on_stage) {
  auto stage_done = [&](StepStage s) {
    if (on_stage) on_stage(s);
  };
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  for (int64_t micro = 0; micro < accum_steps_; ++micro) {
    const auto batch = micro_batch(micro);
    torch::Tensor loss;
    {
      AutocastScope autocast(bf16_, device_.type());
      auto logits = model_->forward(batch.x);  // (B, T, vocab)
      stage_done(StepStage::kHead);
      loss = language_model_loss(logits.to(torch::kFloat32), batch.y, kernels_);
    }
    stage_done(StepStage::kLoss);
    if (reducer_ && micro == accum_steps_ - 1) reducer_->expect_final_backward();
    (loss / double(accum_steps_)).backward();
    loss_sum += loss.detach().to(torch::kFloat64);
    stage_done(StepStage::kBackward);
  }
  return loss_sum / double(accum_steps_);
}

StepOutcome TrainingStep::run_eager(const std::function<Batch()>& next_batch, double lr,
                                    const StageHook& on_stage) {
  set_learning_rate(optimizer_, lr);
  // A captured graph's gradients stay attached between replays: start from none.
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  StepOutcome out;
  const auto loss = forward_backward(
      [&](int64_t) {
        auto batch = next_batch();
        return Batch{batch.x.to(device_), batch.y.to(device_)};
      },
      on_stage);
  out.loss = loss.item<double>();
  if (reducer_) {
    // Every rank then sees the same loss and gradients, and takes the same decision and step.
    const auto t0 = std::chrono::steady_clock::now();
    reducer_->average();
    auto summed = loss.reshape({1});
    group_->all_reduce_sum(summed);
    out.loss = summed.item<double>() / group_->world_size();
    out.allreduce_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  if (std::isfinite(out.loss)) {
    out.grad_norm = optimizer_.clip_and_step(params_, max_norm_);
    out.updated = true;
  }
  // Gradients to none rather than zero: the next backward writes instead of accumulating.
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
  if (on_stage) on_stage(StepStage::kOptimizer);
  return out;
}

CudaGraphStep::Outputs TrainingStep::queue_step(const torch::Tensor& x, const torch::Tensor& y,
                                                const torch::Tensor& lr) {
  const auto loss = forward_backward([&](int64_t micro) { return Batch{x[micro], y[micro]}; });
  // A non-finite loss skips the update inside the kernel: nothing changes, as in run_eager.
  const auto skip = torch::isfinite(loss).logical_not().to(torch::kFloat32);
  auto grad_norm = clip_gradients_on_device(params_, max_norm_);
  optimizer_.step_on_device(lr, step_on_device_, skip);
  return {loss, grad_norm};
}

}  // namespace qkv
