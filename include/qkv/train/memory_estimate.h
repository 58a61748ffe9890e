#pragma once

#include <cstdint>

#include "qkv/config/config.h"

namespace qkv {

// What one training step holds in memory, in bytes, estimated in closed form (fp32): weights,
// gradients and AdamW's two moments (16 bytes a parameter), and the activations autograd keeps
// for the backward pass (per token and layer the block's inputs, Q, K, V, the attention output,
// the feed-forward's hidden layer twice and the attention weights; then the logits).
struct TrainingMemory {
  double parameter_bytes = 0;
  double activation_bytes = 0;
};
TrainingMemory estimate_training_memory(const Config& config);

// Memory the system can give this process now (MemAvailable + SwapFree), or -1 when unknown.
int64_t available_memory_bytes();

// Throws ConfigError naming the keys when the estimate exceeds the available memory, before
// anything is allocated: LibTorch's own message ("[enforce fail at alloc_cpu.cpp]") names none.
void check_training_fits_in_memory(const Config& config);

}  // namespace qkv
