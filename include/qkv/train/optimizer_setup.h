#pragma once

#include <memory>

#include <torch/optim/adamw.h>

#include "qkv/config/config.h"
#include "qkv/model/transformer_lm.h"

namespace qkv {

// AdamW over a model's parameters in two groups: matrices (embeddings, projections) with
// optim.weight_decay, and vectors (biases, norm gains) without: decaying those toward zero only
// fights the normalisation.
std::unique_ptr<torch::optim::AdamW> make_adamw(TransformerLM& model, const OptimConfig& optim);

// Sets every group's learning rate (the schedule's value for this step).
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace qkv
