#pragma once

#include <cstdint>
#include <string>

#include "qkv/config/config.h"

namespace qkv {

// Where one training step's time goes, in ms (medians over the measured steps).
struct StepBreakdown {
  double embedding = 0;      // token embedding + positions
  double attention = 0;      // ln1 + self-attention + residual, all layers
  double feed_forward = 0;   // ln2 + feed-forward + residual, all layers
  double head_and_loss = 0;  // final norm, LM head, cross-entropy
  double backward = 0;
  double optimizer = 0;  // clipping + AdamW step
};

struct BenchmarkReport {
  std::string device, gpu, dtype, blas;  // gpu: the CUDA device's name, "" on the CPU
  int threads = 0, blas_threads = 0;
  int64_t batch_size = 0, block_size = 0, parameters = 0;
  double matmul_fp32_gflops = 0, matmul_bf16_gflops = 0;  // the machine's ceiling
  double step_ms = 0, tokens_per_s = 0;
  double flops_per_step = 0, achieved_gflops = 0, mfu = 0;  // mfu against the dtype's ceiling
  StepBreakdown breakdown;
  double generate_cached_tokens_per_s = 0, generate_uncached_tokens_per_s = 0;
  // Greedy decoding with the KV cache, tokens chosen on the device, 1 and 32 sequences at once.
  double generate_batch1_tokens_per_s = 0, generate_batch32_tokens_per_s = 0;
  double eval_tokens_per_s = 0;
  double peak_rss_mb = 0;
  double peak_gpu_mb = 0;  // the CUDA allocator's peak over the training steps; 0 on the CPU
};

struct BenchmarkOptions {
  int64_t steps = 20;       // measured training steps
  int64_t warmup = 3;       // steps run first and not measured
  int64_t matmul_size = 0;  // n of the n x n ceiling products; 0: 2048 on a CPU, 8192 on a GPU
  bool generation = true;   // also time generation (with and without the KV cache) and evaluation
  std::string profile;      // when set: a Chrome trace of 5 more training steps, written here

  void validate() const;  // throws InvalidOption naming the field
};

// Model FLOPs of one training step in closed form: forward 2 FLOPs per multiply-add of every
// matrix product (the four attention projections, the two feed-forward layers, the LM head, and
// QK^T and AV over the full T x T square), backward twice the forward. Element-wise work is left
// out, as in the usual MFU accounting.
double training_flops_per_step(const ModelConfig& model, int64_t batch_size);

// Times the config's model on random tokens, after warm-up: the machine's matmul ceiling, the
// training step (the trainer's own TrainingStep, its breakdown from the stages the model's forward
// reports), generation and evaluation speed, peak memory.
BenchmarkReport run_benchmark(const Config& config, const BenchmarkOptions& options);

}  // namespace qkv
