#include "qkv/data/batch_sampler.h"

#include <sstream>
#include <stdexcept>

namespace qkv {

BatchSampler::BatchSampler(std::shared_ptr<const TokenFile> tokens, int64_t batch_size,
                           int64_t block_size, uint64_t seed, int rank, int world_size)
    : tokens_(std::move(tokens)),
      batch_size_(batch_size),
      block_size_(block_size),
      rank_(rank),
      world_size_(world_size),
      rng_(seed * 0x9E3779B97F4A7C15ULL + 1) {
  if (rank < 0 || rank >= world_size)
    throw std::invalid_argument("rank " + std::to_string(rank) + " outside world size " +
                                std::to_string(world_size));
  if (tokens_->size() < block_size + 1)
    throw std::invalid_argument(
        tokens_->path() + " has " + std::to_string(tokens_->size()) +
        " tokens; a batch needs at least block_size + 1 = " + std::to_string(block_size + 1));
}

Batch BatchSampler::next() {
  const int64_t B = batch_size_, T = block_size_;
  std::uniform_int_distribution<int64_t> start(0, tokens_->size() - T - 1);
  auto window = torch::empty({B, T + 1}, torch::kInt64);
  auto* p = window.data_ptr<int64_t>();
  // Every rank draws the starts of the whole job's batch and reads its own B of them: N ranks
  // with batch B see exactly the windows of one rank with batch N*B.
  for (int r = 0; r < world_size_; ++r)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t at = start(rng_);
      if (r == rank_) tokens_->read(at, T + 1, p + b * (T + 1));
    }
  return {window.narrow(1, 0, T).contiguous(), window.narrow(1, 1, T).contiguous()};
}

std::string BatchSampler::state() const {
  std::ostringstream out;
  out << rng_;
  return out.str();
}

void BatchSampler::set_state(const std::string& state) {
  std::istringstream in(state);
  in >> rng_;
  if (in.fail()) throw std::invalid_argument("invalid batch sampler state");
}

}  // namespace qkv
