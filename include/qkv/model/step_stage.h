#pragma once

#include <functional>

namespace qkv {

// The stages of one training step, in the order they run. TransformerLM::forward reports the
// first four as it passes them (attention and feed-forward once per layer); TrainingStep reports
// the rest.
enum class StepStage { kEmbedding, kAttention, kFeedForward, kHead, kLoss, kBackward, kOptimizer };

// Called as each stage ends. A benchmark times the stages of the step users run with it; training
// passes none.
using StageHook = std::function<void(StepStage)>;

}  // namespace qkv
