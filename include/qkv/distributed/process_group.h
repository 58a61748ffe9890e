#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/types.h>

#include "qkv/distributed/launch_environment.h"

namespace qkv {

// A collective failed or never started: a peer died, the timeout passed, rank 0 cannot be
// reached or cannot listen. One line; the job cannot go on.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A collective that did not complete: another rank left the job, or runtime.timeout_s passed.
class CollectiveFailed : public DistributedError {
 public:
  using DistributedError::DistributedError;
};

struct ProcessGroupOptions {
  // "gloo", "nccl", or "auto": NCCL for CUDA tensors, Gloo for CPU ones.
  std::string backend = "auto";
  torch::DeviceType device = torch::kCPU;  // where the tensors to reduce live
  // How long a collective (and the rendezvous at start) may wait for the other ranks.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

// A collective started and not yet finished.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Blocks until done; throws DistributedError if it failed.
  virtual void wait() = 0;
};

// The ranks of one data-parallel job joined by PyTorch's c10d (TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT, then ProcessGroupGloo or ProcessGroupNCCL): the few collectives
// training needs, their errors as DistributedError.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  // Joins the job `env` describes; rank 0 listens, the others connect. Throws DistributedError
  // (rank 0 unreachable, port in use, timeout) or std::invalid_argument (a backend that this
  // build or device cannot use).
  static std::shared_ptr<ProcessGroup> connect(const LaunchEnvironment& env,
                                               const ProcessGroupOptions& options);

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }  // the GPU this rank uses
  const std::string& backend() const { return backend_; }

  // Sums `tensor` over the ranks, in place; every rank ends with the same bits.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(torch::Tensor& tensor) = 0;
  void all_reduce_sum(torch::Tensor& tensor) { start_all_reduce_sum(tensor)->wait(); }
  // Copies rank `root`'s `tensor` into every rank's.
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Every rank's `tensor` (same shape on all), in rank order.
  virtual std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) = 0;
  virtual void barrier() = 0;

 protected:
  ProcessGroup(LaunchEnvironment env, std::string backend)
      : env_(std::move(env)), backend_(std::move(backend)) {}

 private:
  LaunchEnvironment env_;
  std::string backend_;
};

// Whether this build can train data-parallel on the CPU: c10d's Gloo needs the Gloo headers at
// build time (Debian: libgloo-dev).
bool gloo_available();
// Whether it can on CUDA (a CUDA LibTorch and NCCL's header at build time).
bool nccl_available();

}  // namespace qkv
