#include "qkv/model/kv_cache.h"

#include <stdexcept>
#include <string>

namespace qkv {

KVCache::KVCache(int64_t capacity) : capacity_(capacity) {
  if (capacity <= 0)
    throw std::invalid_argument("KV cache capacity must be positive, got " +
                                std::to_string(capacity));
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  const int64_t T = k.size(2);
  if (length_ + T > capacity_)
    throw std::length_error("KV cache holds " + std::to_string(length_) + " of " +
                            std::to_string(capacity_) + " positions; " + std::to_string(T) +
                            " more do not fit");
  if (!k_.defined()) {
    // Zeros, not garbage: a step that reads every position (DecodeStep) masks the unwritten
    // ones, and a masked NaN would still poison its weighted sum.
    k_ = torch::zeros({k.size(0), k.size(1), capacity_, k.size(3)}, k.options());
    v_ = torch::zeros_like(k_);
  }
  k_.narrow(2, length_, T).copy_(k);
  v_.narrow(2, length_, T).copy_(v);
  length_ += T;
  return {k_.narrow(2, 0, length_), v_.narrow(2, 0, length_)};
}

void KVCache::set_length(int64_t length) {
  if (length < 0 || length > capacity_)
    throw std::length_error("KV cache length " + std::to_string(length) + " is outside [0, " +
                            std::to_string(capacity_) + "]");
  length_ = length;
}

}  // namespace qkv
