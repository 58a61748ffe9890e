#include "qkv/train/cuda_graph_step.h"

#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace qkv {

struct CudaGraphStep::Impl {
  Body body;
  // Capture needs a stream of its own; warm-up and replays share it.
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  torch::Tensor x, y, lr;  // the graph's inputs, fixed in place
  Outputs out;
};

bool CudaGraphStep::available() {
  return true;
}

CudaGraphStep::CudaGraphStep(Body body) : impl_(std::make_unique<Impl>()) {
  impl_->body = std::move(body);
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::captured() const {
  return impl_->graph != nullptr;
}

void CudaGraphStep::on_stream(const std::function<void()>& work) {
  auto current = c10::cuda::getCurrentCUDAStream();
  at::cuda::CUDAEvent queued;
  queued.record(current);
  queued.block(impl_->stream);
  {
    c10::cuda::CUDAStreamGuard guard(impl_->stream);
    work();
  }
  at::cuda::CUDAEvent done;
  done.record(impl_->stream);
  done.block(current);
}

std::pair<double, double> CudaGraphStep::replay(const torch::Tensor& x, const torch::Tensor& y,
                                                double lr) {
  auto& m = *impl_;
  on_stream([&] {
    if (!m.graph) {
      const auto device = torch::Device(torch::kCUDA, m.stream.device_index());
      m.x = x.to(device);
      m.y = y.to(device);
      m.lr = torch::full({}, lr, torch::TensorOptions().dtype(torch::kFloat32).device(device));
      m.graph = std::make_unique<at::cuda::CUDAGraph>();
      // Cached weight casts would outlive the capture that made them.
      const bool cache = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);
      m.graph->capture_begin();
      m.out = m.body(m.x, m.y, m.lr);
      m.graph->capture_end();
      at::autocast::set_autocast_cache_enabled(cache);
    } else {
      m.x.copy_(x);
      m.y.copy_(y);
      m.lr.fill_(lr);
    }
    m.graph->replay();
  });
  const auto read =
      torch::stack({m.out.loss.to(torch::kFloat64), m.out.grad_norm.to(torch::kFloat64)}).cpu();
  return {read[0].item<double>(), read[1].item<double>()};
}

}  // namespace qkv
