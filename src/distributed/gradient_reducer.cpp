#include "qkv/distributed/gradient_reducer.h"

#include <stdexcept>

namespace qkv {

struct GradientReducer::Bucket {
  torch::Tensor flat;          // the bucket's gradients, end to end
  std::vector<size_t> params;  // indices into params_
  std::vector<char> filled;    // per entry of `params`: its gradient is in `flat` this step
  int64_t missing = 0;         // entries not yet filled this step
  std::unique_ptr<PendingCollective> work;
};

GradientReducer::GradientReducer(std::vector<torch::Tensor> params,
                                 std::shared_ptr<ProcessGroup> group,
                                 GradientReducerOptions options)
    : params_(std::move(params)), group_(std::move(group)), options_(options) {
  place_.resize(params_.size());
  std::vector<int64_t> sizes;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const bool fits =
        !buckets_.empty() &&
        (sizes.back() + p.numel()) * int64_t(p.element_size()) <= options_.bucket_bytes &&
        params_[buckets_.back().params.front()].options().type_equal(p.options());
    if (!fits) {
      buckets_.emplace_back();
      sizes.push_back(0);
    }
    place_[k] = {buckets_.size() - 1, sizes.back()};
    buckets_.back().params.push_back(k);
    sizes.back() += p.numel();
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    auto& bucket = buckets_[b];
    bucket.flat = torch::zeros({sizes[b]}, params_[bucket.params.front()].options());
    bucket.filled.assign(bucket.params.size(), 0);
    bucket.missing = static_cast<int64_t>(bucket.params.size());
  }
  if (options_.overlap)
    for (size_t k = 0; k < params_.size(); ++k)
      hooks_.push_back(
          params_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); }));
}

GradientReducer::~GradientReducer() {
  // The hooks hold `this`; a parameter may outlive the reducer.
  if (options_.overlap)
    for (size_t k = 0; k < hooks_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

int64_t GradientReducer::bucket_count() const {
  return static_cast<int64_t>(buckets_.size());
}

int64_t GradientReducer::bytes_per_step() const {
  int64_t bytes = 0;
  for (const auto& b : buckets_) bytes += b.flat.numel() * b.flat.element_size();
  return bytes;
}

void GradientReducer::expect_final_backward() {
  armed_ = options_.overlap;
}

// A parameter's gradient of the final backward pass, before autograd adds it to .grad: the
// bucket gets the complete gradient (what .grad held from earlier micro-batches, plus this).
void GradientReducer::on_gradient(size_t k, const torch::Tensor& grad) {
  if (!armed_) return;
  auto& bucket = buckets_[place_[k].first];
  const auto& p = params_[k];
  auto slot = bucket.flat.narrow(0, place_[k].second, p.numel()).view_as(p);
  const auto& earlier = p.grad();
  slot.copy_(earlier.defined() ? earlier + grad : grad);
  size_t entry = 0;
  while (bucket.params[entry] != k) ++entry;
  if (bucket.filled[entry]) throw std::logic_error("a parameter's gradient arrived twice");
  bucket.filled[entry] = 1;
  if (--bucket.missing == 0) start(bucket);
}

void GradientReducer::start(Bucket& bucket) {
  bucket.work = group_->start_all_reduce_sum(bucket.flat);
}

void GradientReducer::average() {
  torch::NoGradGuard no_grad;
  armed_ = false;
  for (auto& bucket : buckets_) {
    if (bucket.work) continue;  // started from backward
    for (size_t e = 0; e < bucket.params.size(); ++e) {
      if (bucket.filled[e]) continue;
      const auto& p = params_[bucket.params[e]];
      auto slot = bucket.flat.narrow(0, place_[bucket.params[e]].second, p.numel());
      if (p.grad().defined())
        slot.copy_(p.grad().reshape(-1));
      else
        slot.zero_();
    }
    start(bucket);
  }
  const double scale = 1.0 / group_->world_size();
  for (auto& bucket : buckets_) {
    bucket.work->wait();
    bucket.work.reset();
    bucket.flat.mul_(scale);
    for (size_t k : bucket.params) {
      auto& p = params_[k];
      auto mean = bucket.flat.narrow(0, place_[k].second, p.numel()).view_as(p);
      if (p.grad().defined())
        p.mutable_grad().copy_(mean);
      else
        p.mutable_grad() = mean.clone();
    }
    std::fill(bucket.filled.begin(), bucket.filled.end(), 0);
    bucket.missing = static_cast<int64_t>(bucket.params.size());
  }
}

}  // namespace qkv
