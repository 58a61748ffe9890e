#pragma once

#include <functional>
#include <memory>
#include <utility>

#include <torch/types.h>

namespace qkv {

// One training step captured as a CUDA graph and replayed: the ~600 kernels of a small model's
// step are queued by one call instead of one each, so the step is no longer bound by the CPU
// that queues them. Compiled from cuda_graph_step.cpp with a CUDA LibTorch, else from
// cuda_graph_step_none.cpp, where available() is false.
class CudaGraphStep {
 public:
  struct Outputs {
    torch::Tensor loss, grad_norm;  // device scalars that every replay rewrites
  };
  // Queues a whole step on the device, reading its batch from x and y ((accum, B, T) on the
  // device) and its learning rate from `lr` (a device scalar), and never waits for the device.
  using Body = std::function<Outputs(const torch::Tensor& x, const torch::Tensor& y,
                                     const torch::Tensor& lr)>;

  static bool available();

  explicit CudaGraphStep(Body body);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  // Runs `work` on the stream the graph lives on, after what the current stream has queued and
  // before what it queues next. The eager warm-up steps before the capture run here.
  void on_stream(const std::function<void()>& work);

  // Copies x, y (on the CPU) and lr into the graph's inputs and replays it, capturing it first on
  // the first call; returns {loss, gradient norm}, read back once.
  std::pair<double, double> replay(const torch::Tensor& x, const torch::Tensor& y, double lr);

  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qkv
