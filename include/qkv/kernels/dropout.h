#pragma once

#include <array>
#include <cstdint>

#include <torch/types.h>

namespace qkv {

// Inverted dropout on the CPU: each element kept with probability 1 - p and scaled by 1 / (1 - p),
// else zero (what torch::dropout computes), as a LibTorch autograd function. The keep flags come
// from Philox4x32-10 keyed by one seed drawn from LibTorch's default CPU generator, so
// torch::manual_seed makes runs repeat, and every element's flag is a function of its index:
// all threads draw at once, and backward draws the same flags again instead of keeping a mask.
// (LibTorch's own bernoulli_ draws one element at a time on one thread: 9-11 ns an element here.)
// x: float32 on the CPU; p in [0, 1]. Returns x itself when p = 0 or not training.
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);

// Whether dropout can take x: float32 on the CPU.
bool dropout_supports(const torch::Tensor& x);

// A uint8 tensor of `sizes` whose elements are 1 with probability keep_prob, independently, from
// the same generator as dropout's: the attention kernel's dropout flags.
torch::Tensor bernoulli_mask(at::IntArrayRef sizes, double keep_prob);

// Philox4x32-10 (Salmon, Moraes, Dror and Shaw, SC'11): the four 32-bit words for one counter
// under one key. Exposed for its known-answer test.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

}  // namespace qkv
