#pragma once

#include <cstdint>
#include <utility>

#include <torch/types.h>

namespace qkv {

// Keys and values of the positions one attention layer has seen so far, so that generation
// computes one new position's attention instead of the whole context again. The buffers are
// allocated once, at `capacity` positions, on the first append (which fixes batch, heads, head
// size, dtype and device), and filled in place: appending never copies what is already cached.
// For inference (under NoGradGuard).
class KVCache {
 public:
  explicit KVCache(int64_t capacity);

  // Writes k and v, each (B, H, T, D), at positions [length(), length() + T) and returns views
  // of every cached position: (B, H, length() + T, D) each. Throws std::length_error when the
  // new positions do not fit in the capacity.
  std::pair<torch::Tensor, torch::Tensor> append(const torch::Tensor& k, const torch::Tensor& v);

  int64_t length() const { return length_; }  // positions cached
  int64_t capacity() const { return capacity_; }

  // Every position's buffer, valid or not: (B, H, capacity, D) each; undefined before the first
  // append. For a decoding step that writes in place (DecodeStep), which then sets the length.
  std::pair<torch::Tensor, torch::Tensor> buffers() const { return {k_, v_}; }
  void set_length(int64_t length);
  // Forgets every position but keeps the buffers, so that what reads them in place still can.
  void reset() { length_ = 0; }

 private:
  torch::Tensor k_, v_;  // (B, H, capacity, D); positions [0, length_) are valid
  int64_t length_ = 0;
  int64_t capacity_;
};

}  // namespace qkv
