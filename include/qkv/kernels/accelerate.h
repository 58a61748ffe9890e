#pragma once

#include <torch/types.h>

#include "qkv/kernels/kernel_path.h"
#include "qkv/model/transformer_lm.h"

namespace qkv {

// Replaces the modules of `model` by the engine's (kernels/fused_modules.h) for `path`: every
// attention becomes a FusedSelfAttention; on kFused every layer norm, feed-forward and dropout
// (but attention dropout, which the attention kernel draws itself) becomes its fused version
// too, and on kReference they are the reference modules again. The
// parameters stay the same tensors under the same names, so checkpoints, optimizers and
// exports see no difference. Call it before making the optimizer or capturing a graph.
void accelerate(TransformerLM& model, KernelPath path);

// Mean next-token cross-entropy, as TransformerLMImpl::loss; on kFused by qkv's kernel
// (kernels/cross_entropy.h) where the logits are float32 on the CPU.
torch::Tensor language_model_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                  KernelPath path);

}  // namespace qkv
