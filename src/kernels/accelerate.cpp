#include "qkv/kernels/accelerate.h"

#include <memory>

#include "qkv/kernels/cross_entropy.h"
#include "qkv/kernels/fused_modules.h"
#include "qkv/kernels/replace_module.h"

namespace qkv {

namespace {

// The module for `path`: the fused version on kFused, the reference (a copy of the reference
// part, sharing the parameters) otherwise.
template <typename Fused, typename Reference>
std::shared_ptr<Reference> for_path(const Reference& current, KernelPath path) {
  if (path == KernelPath::kFused) return std::make_shared<Fused>(current);
  return std::make_shared<Reference>(current);
}

void accelerate_attention(TransformerBlockImpl& block, KernelPath path) {
  // Its attention dropout stays the reference: the CPU kernel draws its own flags at that rate.
  auto attn = replace_module(block, "attn", block.attn,
                             std::make_shared<FusedSelfAttentionImpl>(*block.attn, path));
  replace_module(*attn, "resid_dropout", attn->resid_dropout,
                 for_path<FusedDropoutImpl>(*attn->resid_dropout, path));
}

void accelerate_feed_forward(TransformerBlockImpl& block, KernelPath path) {
  // The fused kernel computes the exact GELU; GPT-2's tanh form keeps the reference module.
  const KernelPath gelu_path = block.ffn->approximate == "none" ? path : KernelPath::kReference;
  auto ffn = replace_module(block, "ffn", block.ffn,
                            for_path<FusedFeedForwardImpl>(*block.ffn, gelu_path));
  replace_module(*ffn, "dropout", ffn->dropout, for_path<FusedDropoutImpl>(*ffn->dropout, path));
}

}  // namespace

void accelerate(TransformerLM& model, KernelPath path) {
  replace_module(*model, "drop", model->drop, for_path<FusedDropoutImpl>(*model->drop, path));
  for (auto& module : *model->blocks) {
    auto& block = *module->as<TransformerBlockImpl>();
    replace_module(block, "ln1", block.ln1, for_path<FusedLayerNormImpl>(*block.ln1, path));
    accelerate_attention(block, path);
    replace_module(block, "ln2", block.ln2, for_path<FusedLayerNormImpl>(*block.ln2, path));
    accelerate_feed_forward(block, path);
  }
  replace_module(*model, "ln_f", model->ln_f, for_path<FusedLayerNormImpl>(*model->ln_f, path));
}

torch::Tensor language_model_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                                  KernelPath path) {
  const auto flat_logits = logits.reshape({-1, logits.size(-1)});  // (B * T, V)
  const auto flat_targets = targets.reshape({-1});                 // (B * T)
  if (path == KernelPath::kFused && cross_entropy_supports(flat_logits, flat_targets))
    return qkv::cross_entropy(flat_logits, flat_targets);
  return TransformerLMImpl::loss(logits, targets);
}

}  // namespace qkv
