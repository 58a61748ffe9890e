#pragma once

#include <memory>

#include "qkv/model/transformer_lm.h"
#include "qkv/train/step_stage.h"

namespace qkv {

// Marks where the forward pass's stages end, from outside the model: every layer norm becomes
// one that first tells `*hook` (when set) which stage its input closes (the embedding before the
// first block's ln1, the feed-forward before a later ln1 and before ln_f, the attention before
// each ln2), then normalises as the layer norm it wraps (whichever kernels it runs). Parameters
// and results are unchanged. Call it after accelerate(), which would replace the marks.
void mark_forward_stages(TransformerLM& model, std::shared_ptr<StageHook> hook);

}  // namespace qkv
