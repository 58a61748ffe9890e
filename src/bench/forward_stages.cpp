#include "qkv/bench/forward_stages.h"

#include <string>

#include "qkv/kernels/replace_module.h"

namespace qkv {

namespace {

// A layer norm that reports `ended` before running the one it wraps (sharing its parameters).
class StageMarkImpl : public LayerNormImpl {
 public:
  StageMarkImpl(std::shared_ptr<LayerNormImpl> inner, StepStage ended,
                std::shared_ptr<StageHook> hook)
      : LayerNormImpl(*inner), inner_(std::move(inner)), ended_(ended), hook_(std::move(hook)) {}

  torch::Tensor forward(const torch::Tensor& x) override {
    if (*hook_) (*hook_)(ended_);
    return inner_->forward(x);
  }

 private:
  std::shared_ptr<LayerNormImpl> inner_;
  StepStage ended_;
  std::shared_ptr<StageHook> hook_;
};

void mark(torch::nn::Module& parent, const std::string& name, LayerNorm& norm, StepStage ended,
          const std::shared_ptr<StageHook>& hook) {
  replace_module(parent, name, norm, std::make_shared<StageMarkImpl>(norm.ptr(), ended, hook));
}

}  // namespace

void mark_forward_stages(TransformerLM& model, std::shared_ptr<StageHook> hook) {
  StepStage before_block = StepStage::kEmbedding;
  for (auto& module : *model->blocks) {
    auto& block = *module->as<TransformerBlockImpl>();
    mark(block, "ln1", block.ln1, before_block, hook);
    mark(block, "ln2", block.ln2, StepStage::kAttention, hook);
    before_block = StepStage::kFeedForward;
  }
  mark(*model, "ln_f", model->ln_f, before_block, hook);
}

}  // namespace qkv
