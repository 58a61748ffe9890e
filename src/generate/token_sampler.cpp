#include "qkv/generate/token_sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "qkv/runtime/invalid_option.h"

namespace qkv {

namespace {
std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

void SamplingOptions::validate() const {
  if (!(temperature >= 0.0) || !std::isfinite(temperature))
    throw InvalidOption("temperature", "must be >= 0 (0 = greedy), got " + number(temperature));
  if (top_k < 0)
    throw InvalidOption("top_k", "must be >= 0 (0 = off), got " + std::to_string(top_k));
  if (!(top_p > 0.0 && top_p <= 1.0))
    throw InvalidOption("top_p", "must be in (0, 1], got " + number(top_p));
}

TokenSampler::TokenSampler(const SamplingOptions& options)
    : options_(options), generator_(at::detail::createCPUGenerator(options.seed)) {
  options_.validate();
}

torch::Tensor TokenSampler::top_k_filter(const torch::Tensor& logits, int64_t top_k) {
  if (top_k <= 0 || top_k >= logits.size(-1)) return logits;
  auto keep = std::get<1>(logits.topk(top_k));  // exactly k indices, ties broken by topk
  auto out = torch::full_like(logits, -std::numeric_limits<float>::infinity());
  return out.scatter(-1, keep, logits.gather(-1, keep));
}

torch::Tensor TokenSampler::top_p_filter(const torch::Tensor& logits, double top_p) {
  if (top_p >= 1.0) return logits;
  auto [sorted, order] = logits.sort(-1, /*descending=*/true);
  auto probs = torch::softmax(sorted.to(torch::kFloat64), -1);
  // A token stays if the mass of the tokens ranked above it is still below top_p: this keeps the
  // smallest prefix whose mass reaches top_p (and always the most likely token).
  auto mass_before = probs.cumsum(-1) - probs;
  auto drop_sorted = mass_before >= top_p;
  auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
  return logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
}

TokenId TokenSampler::sample(const torch::Tensor& raw) {
  auto logits = raw.detach().to(torch::kCPU, torch::kFloat32).reshape({-1});
  const auto greedy = [&] { return static_cast<TokenId>(logits.argmax().item<int64_t>()); };
  if (options_.temperature == 0.0) return greedy();
  auto scaled = logits / options_.temperature;
  // A temperature so low that a finite logit divided by it overflows (1e-40 does) is as cold as
  // greedy: the most likely token takes all the mass.
  if ((torch::isinf(scaled) & torch::isfinite(logits)).any().item<bool>()) return greedy();
  logits = scaled;
  logits = top_k_filter(logits, options_.top_k);
  logits = top_p_filter(logits, options_.top_p);
  auto probs = torch::softmax(logits, -1);
  return static_cast<TokenId>(
      torch::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>());
}

}  // namespace qkv
