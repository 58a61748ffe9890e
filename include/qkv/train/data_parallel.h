#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "qkv/config/config.h"
#include "qkv/distributed/launch_environment.h"
#include "qkv/distributed/process_group.h"

namespace qkv {

// The data-parallel job a training process is a rank of: who it is, the process group, and what
// the ranks must agree on. Every rank trains the same model on its share of each batch; rank 0
// alone writes. Without a launch environment, or with a world of one, it is a job of one and the
// calls below change nothing.
class DataParallelJob {
 public:
  // Joins the job (runtime.backend, runtime.timeout_s; throws DistributedError when it cannot) and
  // picks this rank's device (runtime.device; on GPUs, one per rank of the machine). The ranks
  // meet before any of them reads data: each machine's first rank prepares it before joining.
  DataParallelJob(const std::optional<LaunchEnvironment>& launch, const RuntimeConfig& runtime);

  int rank() const { return rank_; }
  int world_size() const { return group_ ? group_->world_size() : 1; }
  bool distributed() const { return world_size() > 1; }
  bool writer() const { return rank_ == 0; }
  const torch::Device& device() const { return device_; }
  // The process group, set in a job of several ranks (TrainingStep averages gradients over it).
  const std::shared_ptr<ProcessGroup>& group() const { return group_; }

  // Every rank takes rank 0's weights and buffers, then seeds its own dropout draws from `seed`
  // (rank 0 keeps the single-process stream, so one rank trains as a plain run does).
  void start_from_rank0(torch::nn::Module& model, uint64_t seed);

  // The ranks step identically, so their weights must be bit-identical: checked (a hash of every
  // parameter's bytes) before rank 0 writes a checkpoint on behalf of all of them. Throws
  // DistributedError naming the rank that differs at `step`.
  void check_weights_agree(const torch::nn::Module& model, int64_t step);

  // Whether any rank asks to stop (SIGINT, SIGTERM on one rank stops all after the same step).
  bool any_rank_stops(bool mine);

  // `total` summed over the ranks, in place.
  void sum(torch::Tensor& total);

  // Each rank's `state` (a CPU byte tensor of one size on every rank), stacked: (world, bytes).
  torch::Tensor gather(const torch::Tensor& state);

 private:
  int rank_ = 0;
  torch::Device device_{torch::kCPU};
  std::shared_ptr<ProcessGroup> group_;
};

}  // namespace qkv
