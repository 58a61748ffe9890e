#include "qkv/runtime/captured_graph.h"

// The build for a LibTorch without CUDA (Debian's): there is no graph to capture, and the body
// runs eagerly every time.
namespace qkv {

struct CapturedGraph::Impl {
  std::function<void()> body;
};

CapturedGraph::CapturedGraph(std::function<void()> body, bool) : impl_(std::make_unique<Impl>()) {
  impl_->body = std::move(body);
}

CapturedGraph::~CapturedGraph() = default;

bool CapturedGraph::available() {
  return false;
}

bool CapturedGraph::replaying() const {
  return false;
}

void CapturedGraph::run() {
  impl_->body();
}

}  // namespace qkv
