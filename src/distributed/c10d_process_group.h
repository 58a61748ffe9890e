#pragma once
// A qkv::ProcessGroup over one c10d backend (ProcessGroupGloo, ProcessGroupNCCL): the same calls
// on LibTorch 1.13, where they derive from c10d::ProcessGroup, and 2.x, where they derive from
// c10d::Backend. Included only by the files that make such a group.

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <string>
#include <utility>
#include <vector>

#include "qkv/distributed/process_group.h"

namespace qkv::detail {

// The first line of a c10d error, without LibTorch's backtrace.
std::string collective_error_line(const std::exception& e);

// Runs `op` and turns a failure into one CollectiveFailed line naming the collective.
template <class Op>
auto run_collective(int rank, const char* name, Op&& op) {
  try {
    return op();
  } catch (const std::exception& e) {
    throw CollectiveFailed("rank " + std::to_string(rank) + ": " + name +
                           " failed (a rank left the job, or the collective timeout passed): " +
                           collective_error_line(e));
  }
}

class C10dPending : public PendingCollective {
 public:
  C10dPending(c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors, int rank)
      : work_(std::move(work)), tensors_(std::move(tensors)), rank_(rank) {}
  void wait() override {
    run_collective(rank_, "all-reduce", [&] { return work_->wait(); });
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;  // alive until the backend is done with them
  int rank_;
};

template <class Backend>
class C10dProcessGroup : public ProcessGroup {
 public:
  C10dProcessGroup(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Backend> group,
                   const LaunchEnvironment& env, std::string name)
      : ProcessGroup(env, std::move(name)), store_(std::move(store)), group_(std::move(group)) {}

  std::unique_ptr<PendingCollective> start_all_reduce_sum(torch::Tensor& tensor) override {
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    auto work =
        run_collective(rank(), "all-reduce", [&] { return group_->allreduce(tensors, options); });
    return std::make_unique<C10dPending>(std::move(work), std::move(tensors), rank());
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    std::vector<at::Tensor> tensors{tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    run_collective(rank(), "broadcast",
                   [&] { return group_->broadcast(tensors, options)->wait(); });
  }

  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) override {
    std::vector<at::Tensor> input{tensor.contiguous()};
    std::vector<std::vector<at::Tensor>> output(1);
    for (int r = 0; r < world_size(); ++r) output[0].push_back(torch::empty_like(input[0]));
    run_collective(rank(), "all-gather", [&] { return group_->allgather(output, input)->wait(); });
    return output[0];
  }

  void barrier() override {
    run_collective(rank(), "barrier", [&] { return group_->barrier()->wait(); });
  }

 private:
  c10::intrusive_ptr<c10d::Store> store_;  // the rendezvous; the backend keeps using it
  c10::intrusive_ptr<Backend> group_;
};

// The backends, each in its own file (its headers need Gloo or NCCL at build time); where the
// build has neither, the stand-ins throw std::invalid_argument saying what to install.
std::shared_ptr<ProcessGroup> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env,
                                              std::chrono::milliseconds timeout);
std::shared_ptr<ProcessGroup> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env,
                                              std::chrono::milliseconds timeout);

}  // namespace qkv::detail
