#include "qkv/serve/compute_thread.h"

#include <exception>
#include <future>
#include <memory>

#include <torch/torch.h>

namespace qkv {

ComputeThread::ComputeThread() : thread_([this] { loop(); }) {}

ComputeThread::~ComputeThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ComputeThread::run(const std::function<void()>& job) {
  // The promise is shared with the queued job: set_value() may still be touching it when the
  // caller, woken, returns, so the caller's frame must not own it.
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back([&job, done] {
      try {
        job();  // `job` lives in the caller's frame, which waits until this has returned
        done->set_value();
      } catch (...) {
        done->set_exception(std::current_exception());
      }
    });
  }
  wake_.notify_one();
  finished.get();  // rethrows the job's exception
}

size_t ComputeThread::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void ComputeThread::loop() {
  torch::NoGradGuard no_grad;  // thread-local: serving never trains
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace qkv
