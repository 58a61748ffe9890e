#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "qkv/distributed/process_group.h"

namespace qkv {

struct GradientReducerOptions {
  // Gradients travel in flat buckets of at most this many bytes (PyTorch's DDP: 25 MB): one
  // collective per bucket instead of one per parameter.
  int64_t bucket_bytes = 25 << 20;
  // Start a bucket's all-reduce from the backward pass, as soon as its last gradient is
  // computed (gradient hooks), so communication overlaps the rest of backward.
  bool overlap = false;
};

// Averages the parameters' gradients over the ranks of a ProcessGroup, bucket by bucket, so that
// N ranks with batch B step exactly as one rank with batch N*B (up to summation order).
// Buckets follow the parameters in reverse, the order backward produces their gradients.
class GradientReducer {
 public:
  GradientReducer(std::vector<torch::Tensor> params, std::shared_ptr<ProcessGroup> group,
                  GradientReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call before the backward pass that completes the gradients (the last micro-batch): with
  // overlap on, that pass starts the all-reduces as its buckets fill.
  void expect_final_backward();
  // After that backward pass: every parameter's .grad becomes the mean over the ranks (a
  // parameter without a gradient counts as zero).
  void average();

  int64_t bucket_count() const;
  int64_t bytes_per_step() const;  // what one rank sends into the all-reduces per step

 private:
  struct Bucket;
  void on_gradient(size_t param_index, const torch::Tensor& grad);
  void start(Bucket& bucket);

  std::vector<torch::Tensor> params_;
  std::shared_ptr<ProcessGroup> group_;
  GradientReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, int64_t>> place_;  // per parameter: its bucket and offset
  std::vector<unsigned> hooks_;
  bool armed_ = false;
};

}  // namespace qkv
