#pragma once

#include <functional>
#include <memory>

namespace qkv {

// A piece of device work recorded once as a CUDA graph and replayed: the dozens to hundreds of
// kernels of a forward pass are then queued by one call instead of one each, so small models stop
// being bound by the CPU that queues them (evaluation batches, one decoding step).
//
// `body` must be replayable: it reads its inputs from, and writes its results into, tensors that
// stay in place between runs (copy new inputs into them before run()), with shapes and control
// flow that do not depend on their values, and no reads back to the host.
//
// run() runs `body` eagerly the first time (its results are the real ones, and cuBLAS and the
// allocator settle), captures it on the second and replays it from then on. Without CUDA (the
// build for a LibTorch without it, or `enabled` false) run() always calls `body`: the same code,
// eagerly, which is what the tests on a CPU exercise. Compiled from captured_graph.cpp with a
// CUDA LibTorch, else from captured_graph_none.cpp.
class CapturedGraph {
 public:
  CapturedGraph(std::function<void()> body, bool enabled);
  ~CapturedGraph();
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;

  // Whether this build can capture at all (a CUDA LibTorch).
  static bool available();

  void run();
  bool replaying() const;  // run() now replays a captured graph

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qkv
