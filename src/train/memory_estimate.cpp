#include "qkv/train/memory_estimate.h"

#include <cstdio>
#include <fstream>
#include <string>

namespace qkv {

namespace {

std::string gigabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g GB", bytes / 1e9);
  return text;
}

}  // namespace

TrainingMemory estimate_training_memory(const Config& config) {
  const auto& m = config.model;
  // Doubles throughout: the sizes a user may type (batch 10^12) overflow 64-bit integers.
  const double C = double(m.d_model), F = double(m.ffn_dim()), H = double(m.n_head);
  const double T = double(m.block_size), L = double(m.n_layer), V = double(m.vocab_size);
  const double tokens = double(config.train.batch_size) * T;
  TrainingMemory out;
  out.parameter_bytes = 16.0 * double(m.parameter_count());
  out.activation_bytes = 4.0 * tokens * (L * (10 * C + 2 * F + 3 * H * T) + 3 * V);
  return out;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t value = 0, available = -1, swap = 0;
  std::string unit;
  while (in >> key >> value >> unit) {
    if (key == "MemAvailable:") available = value * 1024;
    if (key == "SwapFree:") swap = value * 1024;
  }
  return available < 0 ? -1 : available + swap;
}

void check_training_fits_in_memory(const Config& config) {
  const int64_t available = available_memory_bytes();
  if (available < 0) return;
  const auto need = estimate_training_memory(config);
  const std::string where = config.source.empty() ? "config" : config.source;
  const auto& m = config.model;
  if (need.parameter_bytes > double(available))
    throw ConfigError(where + ": model (n_layer " + std::to_string(m.n_layer) + ", d_model " +
                      std::to_string(m.d_model) + ", vocab_size " + std::to_string(m.vocab_size) +
                      ") needs " + gigabytes(need.parameter_bytes) +
                      " for its weights, gradients and AdamW state; " +
                      gigabytes(double(available)) + " of memory is available");
  if (need.parameter_bytes + need.activation_bytes > double(available))
    throw ConfigError(where + ": train.batch_size " + std::to_string(config.train.batch_size) +
                      " x model.block_size " + std::to_string(m.block_size) +
                      ": a training step needs about " +
                      gigabytes(need.parameter_bytes + need.activation_bytes) + "; " +
                      gigabytes(double(available)) + " of memory is available");
}

}  // namespace qkv
