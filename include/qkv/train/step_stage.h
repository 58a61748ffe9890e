#pragma once

#include <functional>

namespace qkv {

// The stages of one training step, in the order they run (attention and feed-forward once per
// layer). TrainingStep reports the head (when the forward pass returns) and the stages after it;
// the forward pass's own stages are marked from outside the model (bench/forward_stages.h).
enum class StepStage { kEmbedding, kAttention, kFeedForward, kHead, kLoss, kBackward, kOptimizer };

// Called as each stage ends. A benchmark times the stages of the step users run with it; training
// passes none.
using StageHook = std::function<void(StepStage)>;

}  // namespace qkv
