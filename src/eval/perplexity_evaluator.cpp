#include "qkv/eval/perplexity_evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "qkv/runtime/invalid_option.h"

namespace qkv {

namespace {

// One window: inputs tokens[begin, begin + length), of which the last `scored` targets count.
struct Window {
  int64_t begin, length, scored;
};

}  // namespace

void PerplexityOptions::validate() const {
  if (stride < 0)
    throw InvalidOption("stride",
                        "must be >= 0 (0 = the context length), got " + std::to_string(stride));
  if (batch_size <= 0)
    throw InvalidOption("batch_size", "must be positive, got " + std::to_string(batch_size));
}

PerplexityResult evaluate_perplexity(TransformerLM model, const std::vector<TokenId>& tokens,
                                     int64_t bytes, const PerplexityOptions& options) {
  options.validate();
  const int64_t L = model->config().block_size;
  const int64_t stride = options.stride > 0 ? options.stride : L;
  const auto N = static_cast<int64_t>(tokens.size());
  if (N < 2)
    throw std::invalid_argument(
        "evaluation needs at least 2 tokens (one to predict from, one to "
        "predict), got " +
        std::to_string(N));
  if (stride > L)
    throw InvalidOption("stride", "must be at most the context length " + std::to_string(L) +
                                      ", got " + std::to_string(stride));

  // Targets are tokens[1..N-1]; window w predicts targets begin+1 .. begin+length.
  std::vector<Window> windows;
  int64_t scored_until = 0;  // targets with index <= scored_until are done
  for (int64_t begin = 0; scored_until < N - 1; begin += stride) {
    const int64_t length = std::min(L, N - 1 - begin);
    const int64_t end = begin + length;  // last target index
    windows.push_back({begin, length, end - scored_until});
    scored_until = end;
  }

  torch::NoGradGuard no_grad;
  model->eval();
  const auto device = model->tok_emb->weight.device();
  const auto start = std::chrono::steady_clock::now();
  double total_nll = 0;
  int64_t count = 0;
  for (size_t i = 0; i < windows.size();) {
    // Batch windows of equal length (all but possibly the last).
    size_t j = i;
    while (j < windows.size() && j - i < static_cast<size_t>(options.batch_size) &&
           windows[j].length == windows[i].length)
      ++j;
    const int64_t B = static_cast<int64_t>(j - i), T = windows[i].length;
    auto x = torch::empty({B, T}, torch::kLong), y = torch::empty({B, T}, torch::kLong);
    auto mask = torch::zeros({B, T}, torch::kBool);
    auto* xp = x.data_ptr<int64_t>();
    auto* yp = y.data_ptr<int64_t>();
    auto* mp = mask.data_ptr<bool>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& w = windows[i + b];
      std::copy_n(tokens.begin() + w.begin, T, xp + b * T);
      std::copy_n(tokens.begin() + w.begin + 1, T, yp + b * T);
      std::fill_n(mp + b * T + (T - w.scored), w.scored, true);
    }
    auto logits = model(x.to(device)).to(torch::kFloat32);  // (B, T, V)
    auto nll = torch::nn::functional::cross_entropy(
        logits.reshape({B * T, -1}), y.to(device).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto m = mask.to(device).reshape({-1});
    total_nll += nll.masked_select(m).to(torch::kFloat64).sum().item<double>();
    count += m.sum().item<int64_t>();
    i = j;
  }

  PerplexityResult r;
  r.tokens_scored = count;
  r.mean_nll = total_nll / double(count);
  r.perplexity = std::exp(r.mean_nll);
  r.bytes = bytes;
  r.bits_per_byte = bytes > 0 ? total_nll / std::log(2.0) / double(bytes) : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_s = double(count) / std::max(r.seconds, 1e-9);
  return r;
}

}  // namespace qkv
