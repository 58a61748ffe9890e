#include "qkv/train/data_parallel.h"

#include <torch/nn/module.h>

#include "qkv/runtime/runtime_setup.h"

namespace qkv {

DataParallelJob::DataParallelJob(const std::optional<LaunchEnvironment>& launch,
                                 const RuntimeConfig& runtime)
    : rank_(launch ? launch->rank : 0), device_(resolve_device(runtime.device)) {
  if (!launch || launch->world_size == 1) return;
  if (device_.is_cuda())  // one GPU per rank of this machine
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(launch->local_rank));
  ProcessGroupOptions o;
  o.backend = runtime.backend;
  o.device = device_.type();
  o.timeout = std::chrono::seconds(runtime.timeout_s);
  group_ = ProcessGroup::connect(*launch, o);
}

void DataParallelJob::start_from_rank0(torch::nn::Module& model, uint64_t seed) {
  if (!distributed()) return;
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) group_->broadcast(p, 0);
  for (auto& b : model.buffers()) group_->broadcast(b, 0);
  if (rank_ > 0) torch::manual_seed(seed + 1000003ULL * uint64_t(rank_));
}

void DataParallelJob::check_weights_agree(const torch::nn::Module& model, int64_t step) {
  if (!distributed()) return;
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a over every parameter's bytes
  for (const auto& p : model.parameters()) {
    const auto cpu = p.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(cpu.data_ptr());
    for (size_t i = 0; i < cpu.nbytes(); ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  }
  auto mine = torch::tensor({static_cast<int64_t>(hash)}, torch::kInt64);
  if (device_.is_cuda()) mine = mine.to(device_);
  const auto all = group_->all_gather(mine);
  for (int r = 1; r < world_size(); ++r)
    if (!torch::equal(all[r], all[0]))
      throw DistributedError("the weights of rank " + std::to_string(r) +
                             " differ from rank 0's at step " + std::to_string(step) +
                             "; the ranks must run the same qkv build and config");
}

bool DataParallelJob::any_rank_stops(bool mine) {
  if (!distributed()) return mine;
  auto flag = torch::full({1}, mine ? 1.0 : 0.0, torch::TensorOptions().device(device_));
  group_->all_reduce_sum(flag);
  return flag.item<double>() > 0;
}

void DataParallelJob::sum(torch::Tensor& total) {
  if (distributed()) group_->all_reduce_sum(total);
}

torch::Tensor DataParallelJob::gather(const torch::Tensor& state) {
  // NCCL gathers CUDA tensors only.
  return torch::stack(group_->all_gather(state.to(device_))).to(torch::kCPU);
}

}  // namespace qkv
