#include "qkv/generate/incremental_decoder.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace qkv {

IncrementalDecoder::IncrementalDecoder(TransformerLM model, bool use_kv_cache, double keep)
    : model_(std::move(model)), use_cache_(use_kv_cache), block_size_(model_->config().block_size) {
  if (!(keep > 0.0 && keep <= 1.0))
    throw std::invalid_argument("the part of the context kept on a slide must be in (0, 1], got " +
                                std::to_string(keep));
  keep_tokens_ = keep >= 1.0
                     ? block_size_
                     : std::max<int64_t>(1, static_cast<int64_t>(keep * double(block_size_)));
  model_->eval();
}

torch::Tensor IncrementalDecoder::forward(const std::vector<TokenId>& tokens, bool with_cache) {
  auto device = model_->tok_emb->weight.device();
  auto idx = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), torch::kLong)
                 .unsqueeze(0)
                 .to(device);                                  // (1, T)
  auto logits = model_(idx, with_cache ? &caches_ : nullptr);  // (1, T, V)
  return logits[0][-1].to(torch::kCPU, torch::kFloat32);
}

torch::Tensor IncrementalDecoder::feed(const std::vector<TokenId>& tokens) {
  if (tokens.empty()) throw std::invalid_argument("no tokens to feed the model");
  torch::NoGradGuard no_grad;
  for (auto t : tokens) context_.push_back(t);
  bool slid = false;
  if (static_cast<int64_t>(context_.size()) > block_size_) {
    // The new tokens always stay, even when they alone are more than keep_tokens_.
    const int64_t keep =
        std::max<int64_t>(keep_tokens_, std::min<int64_t>(int64_t(tokens.size()), block_size_));
    while (static_cast<int64_t>(context_.size()) > keep) context_.pop_front();
    slid = true;
  }
  const int64_t cached = caches_.empty() ? 0 : caches_[0].length();
  if (!use_cache_ || slid || cached + static_cast<int64_t>(tokens.size()) > block_size_) {
    // Whole window from scratch: recomputation mode, or a slide (the cache is rebuilt, in the
    // same buffers, which a captured decoding step reads in place).
    if (use_cache_ && cached > 0) ++rebuilds_;
    for (auto& cache : caches_) cache.reset();
    return forward(std::vector<TokenId>(context_.begin(), context_.end()), use_cache_);
  }
  // On a GPU one new token is one replay of a captured step; elsewhere (and for several tokens)
  // the model's forward, which attends to the cached positions alone.
  if (tokens.size() == 1 && cached > 0 && model_->lm_head_weight().is_cuda()) {
    if (!step_) step_ = std::make_unique<DecodeStep>(model_, caches_);
    return step_->run(torch::tensor({static_cast<int64_t>(tokens[0])}, torch::kLong))[0].to(
        torch::kCPU);
  }
  return forward(tokens, true);  // only the new positions; keys and values come from the cache
}

}  // namespace qkv
