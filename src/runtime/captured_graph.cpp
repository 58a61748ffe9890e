#include "qkv/runtime/captured_graph.h"

#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace qkv {

struct CapturedGraph::Impl {
  std::function<void()> body;
  bool enabled = false;
  int64_t runs = 0;
  std::unique_ptr<c10::cuda::CUDAStream> stream;  // capture needs a stream of its own
  std::unique_ptr<at::cuda::CUDAGraph> graph;

  // `work` on the graph's stream, ordered after what the current stream queued and before what
  // it queues next.
  void on_stream(const std::function<void()>& work) {
    auto current = c10::cuda::getCurrentCUDAStream();
    if (!stream) stream = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool());
    at::cuda::CUDAEvent queued;
    queued.record(current);
    queued.block(*stream);
    {
      c10::cuda::CUDAStreamGuard guard(*stream);
      work();
    }
    at::cuda::CUDAEvent done;
    done.record(*stream);
    done.block(current);
  }
};

CapturedGraph::CapturedGraph(std::function<void()> body, bool enabled)
    : impl_(std::make_unique<Impl>()) {
  impl_->body = std::move(body);
  impl_->enabled = enabled;
}

CapturedGraph::~CapturedGraph() = default;

bool CapturedGraph::available() {
  return true;
}

bool CapturedGraph::replaying() const {
  return impl_->graph != nullptr;
}

void CapturedGraph::run() {
  auto& m = *impl_;
  if (!m.enabled) return m.body();
  if (m.runs++ == 0) return m.on_stream(m.body);  // the warm-up run, eager
  m.on_stream([&] {
    if (!m.graph) {
      m.graph = std::make_unique<at::cuda::CUDAGraph>();
      // Cached weight casts would outlive the capture that made them.
      const bool cache = at::autocast::is_autocast_cache_enabled();
      at::autocast::set_autocast_cache_enabled(false);
      m.graph->capture_begin();
      m.body();
      m.graph->capture_end();
      at::autocast::set_autocast_cache_enabled(cache);
    }
    m.graph->replay();
  });
}

}  // namespace qkv
