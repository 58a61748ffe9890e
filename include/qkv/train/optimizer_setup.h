#pragma once

#include <memory>

#include "qkv/config/config.h"
#include "qkv/model/transformer_lm.h"
#include "qkv/train/adamw.h"

namespace qkv {

// AdamW over a model's parameters in two groups: matrices (embeddings, projections) with
// optim.weight_decay, and vectors (biases, norm gains) without: decaying those toward zero only
// fights the normalisation. `route`: LibTorch's update or qkv's flat one (AdamW::route_for).
std::unique_ptr<AdamW> make_adamw(TransformerLM& model, const OptimConfig& optim,
                                  AdamW::Route route = AdamW::Route::kLibTorch);
// The same for a run: optim.* and the route runtime.kernels asks for (runtime_kernel_path).
std::unique_ptr<AdamW> make_adamw(TransformerLM& model, const Config& config);

// Sets every group's learning rate (the schedule's value for this step).
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace qkv
