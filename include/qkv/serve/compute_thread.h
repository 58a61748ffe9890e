#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace qkv {

// One thread that runs every computation on the model, one job at a time in arrival order: the
// server's many connection threads hand their work here and wait. Requests therefore queue (none
// sees the model half-way through another's), and LibTorch's and OpenBLAS's OpenMP pools serve
// one caller instead of a team per connection thread spinning beside each other.
class ComputeThread {
 public:
  ComputeThread();
  ~ComputeThread();  // finishes the queued jobs, then joins
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Runs `job` on the compute thread and returns when it has run; an exception it throws is
  // rethrown here.
  void run(const std::function<void()>& job);

  size_t waiting() const;  // jobs queued, not yet started

 private:
  void loop();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qkv
