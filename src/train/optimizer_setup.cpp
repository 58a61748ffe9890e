#include "qkv/train/optimizer_setup.h"

#include "qkv/train/training_step.h"  // runtime_kernel_path

namespace qkv {

std::unique_ptr<AdamW> make_adamw(TransformerLM& model, const OptimConfig& o, AdamW::Route route) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(base).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(base).weight_decay(0.0)));
  return std::make_unique<AdamW>(std::move(groups), base, route);
}

std::unique_ptr<AdamW> make_adamw(TransformerLM& model, const Config& config) {
  return make_adamw(model, config.optim, AdamW::route_for(runtime_kernel_path(config)));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace qkv
