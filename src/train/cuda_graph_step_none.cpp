#include "qkv/train/cuda_graph_step.h"

#include <stdexcept>

// The build for a LibTorch without CUDA (Debian's): there is no graph to capture.
namespace qkv {

struct CudaGraphStep::Impl {};

bool CudaGraphStep::available() {
  return false;
}

CudaGraphStep::CudaGraphStep(Body) {
  throw std::logic_error("CUDA graphs need a LibTorch built with CUDA");
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::captured() const {
  return false;
}

void CudaGraphStep::on_stream(const std::function<void()>& work) {
  work();
}

std::pair<double, double> CudaGraphStep::replay(const torch::Tensor&, const torch::Tensor&,
                                                double) {
  throw std::logic_error("CUDA graphs need a LibTorch built with CUDA");
}

}  // namespace qkv
