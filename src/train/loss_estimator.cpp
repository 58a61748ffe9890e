#include "qkv/train/loss_estimator.h"

#include <vector>

#include "qkv/data/batch_sampler.h"
#include "qkv/runtime/autocast_scope.h"

namespace qkv {

LossEstimator::LossEstimator(TransformerLM model, std::shared_ptr<const TokenFile> tokens,
                             const LossEstimatorOptions& options)
    : model_(std::move(model)), bf16_(options.bf16) {
  const auto device = model_->lm_head_weight().device();
  BatchSampler sampler(std::move(tokens), options.batch_size, options.block_size, options.seed,
                       options.rank, options.world_size);
  // Each window once, inputs and targets overlapping, as int32: a quarter of two int64 copies.
  std::vector<torch::Tensor> windows;
  for (int64_t i = 0; i < options.batches; ++i) {
    auto batch = sampler.next();
    windows.push_back(torch::cat({batch.x, batch.y.narrow(1, -1, 1)}, 1).to(torch::kInt32));
  }
  windows_ = torch::stack(windows).to(device);  // (batches, B, T + 1)
  x_in_ = torch::empty({options.batch_size, options.block_size},
                       torch::TensorOptions().dtype(torch::kLong).device(device));
  y_in_ = torch::empty_like(x_in_);
  total_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  graph_ = std::make_unique<CapturedGraph>(
      [this] {
        // Inside the body: the captured kernels are the ones these modes choose.
        torch::NoGradGuard no_grad;
        AutocastScope autocast(bf16_, x_in_.device().type());
        auto logits = model_(x_in_);  // (B, T, V)
        total_ += TransformerLMImpl::loss(logits.to(torch::kFloat32), y_in_).to(torch::kFloat64);
      },
      device.is_cuda());
}

LossEstimator::~LossEstimator() = default;

torch::Tensor LossEstimator::loss_sum() {
  torch::NoGradGuard no_grad;
  model_->eval();
  total_.zero_();
  const int64_t T = x_in_.size(1);
  for (int64_t i = 0; i < batches(); ++i) {
    x_in_.copy_(windows_[i].narrow(1, 0, T));
    y_in_.copy_(windows_[i].narrow(1, 1, T));
    graph_->run();
  }
  model_->train();
  return total_.clone();
}

}  // namespace qkv
