#include "qkv/train/checkpoint_writer.h"

#include <mutex>
#include <unordered_map>

#include <ATen/CPUGeneratorImpl.h>

#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include "qkv/train/adamw.h"

namespace qkv {

namespace {

// Host memory for a copy of `source`: pinned when the source is on a GPU, so that the copy is
// one asynchronous transfer.
torch::Tensor host_like(const torch::Tensor& source) {
  auto t = torch::empty(source.sizes(), source.options().device(torch::kCPU));
  return source.is_cuda() ? t.pin_memory() : t;
}

std::vector<torch::Tensor> group_params(torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> params;
  for (auto& group : optimizer.param_groups())
    params.insert(params.end(), group.params().begin(), group.params().end());
  return params;
}

}  // namespace

CheckpointWriter::CheckpointWriter(TransformerLM model, torch::optim::AdamW* optimizer)
    : model_(std::move(model)), optimizer_(optimizer) {}

CheckpointWriter::~CheckpointWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
}

void CheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

// The model's parameters and buffers, and the optimizer's groups (options included: the learning
// rate changes every step) and state, copied into the host model and optimizer.
void CheckpointWriter::snapshot() {
  torch::NoGradGuard no_grad;
  auto params = model_->parameters();
  if (!host_model_) {
    // Its random initial values must not move the generator that training draws dropout from.
    auto generator = at::detail::getDefaultCPUGenerator();
    torch::Tensor rng;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng = generator.get_state();
    }
    host_model_ = TransformerLM(model_->config());
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng);
    }
    auto host_params = host_model_->parameters();
    std::unordered_map<const void*, torch::Tensor> host_of;
    for (size_t i = 0; i < params.size(); ++i) {
      host_params[i].set_data(host_like(params[i]));
      host_of[params[i].unsafeGetTensorImpl()] = host_params[i];
    }
    if (optimizer_) {
      std::vector<torch::optim::OptimizerParamGroup> groups;
      for (auto& group : optimizer_->param_groups()) {
        std::vector<torch::Tensor> mapped;
        for (auto& p : group.params()) mapped.push_back(host_of.at(p.unsafeGetTensorImpl()));
        groups.emplace_back(mapped, group.options().clone());
      }
      host_optimizer_ = std::make_unique<torch::optim::AdamW>(std::move(groups));
    }
  }
  auto host_params = host_model_->parameters();
  for (size_t i = 0; i < params.size(); ++i) host_params[i].copy_(params[i], true);
  auto buffers = model_->buffers(), host_buffers = host_model_->buffers();
  for (size_t i = 0; i < buffers.size(); ++i) host_buffers[i].copy_(buffers[i]);
  if (optimizer_) {
    auto& live = optimizer_->param_groups();
    auto& host = host_optimizer_->param_groups();
    for (size_t g = 0; g < live.size(); ++g) host[g].set_options(live[g].options().clone());
    copy_optimizer_state(*optimizer_, group_params(*optimizer_), *host_optimizer_,
                         group_params(*host_optimizer_), host_like);
  }
  if (!params.empty() && params[0].is_cuda()) torch::cuda::synchronize();
}

void CheckpointWriter::save(const std::vector<std::string>& paths, const Config& config,
                            const Tokenizer& tokenizer, const TrainingState& state) {
  wait();  // the host copy is the one in-flight write's: it changes only after that write
  snapshot();
  thread_ = std::thread(
      [this, paths, config, kind = tokenizer.kind(), bytes = tokenizer.serialize(), state] {
        try {
          const std::string data =
              serialize_checkpoint(host_model_, host_optimizer_.get(), config, kind, bytes, state);
          // Each name its own file: best.pt stays a copy of its own when last.pt is damaged.
          for (const auto& path : paths) write_checkpoint_bytes(path, data);
        } catch (...) {
          error_ = std::current_exception();
        }
      });
}

}  // namespace qkv
