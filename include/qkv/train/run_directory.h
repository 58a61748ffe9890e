#pragma once

#include <chrono>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <nlohmann/json_fwd.hpp>

#include "qkv/config/config.h"
#include "qkv/train/run_directory_lock.h"

namespace qkv {

// The run's metrics or log could not be written (a full disk, say): the run stops, as it does
// when a checkpoint cannot be written, and the last checkpoint stays.
class RunWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A training run's directory as the writing rank (rank 0) keeps it. Made, it holds the directory's
// lock (RunDirectoryLock) and has removed what writers killed mid-write left; nothing else in it
// changes until begin(), after the first step. Then: the run's id (file `run_id`), the resolved
// config.yaml, metrics.jsonl and train.log with the lines logged so far.
class RunDirectory {
 public:
  explicit RunDirectory(std::string path);
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // The id of the run this directory holds, from its `run_id` file: "" when there is none (a
  // fresh directory, or one written before runs had ids).
  std::string recorded_run_id() const;

  // Holds log lines until begin() writes them to train.log (add it to the run's logger).
  std::shared_ptr<spdlog::sinks::sink> early_log() const { return early_log_; }

  // Writes `run_id`, config.yaml and metrics.jsonl (cut back to the records of steps up to
  // `resumed_from` when resuming, so that no step stands twice; emptied for a fresh run, -1), and
  // moves `log` from the early sink to train.log.
  void begin(const Config& config, const std::string& run_id, int64_t resumed_from,
             spdlog::logger& log);

  // Records reach metrics.jsonl about once a second and at every flush_metrics() (before each
  // checkpoint: a resumed run keeps the records up to its checkpoint's step, so they must all be
  // there by then), not with a system call after every step; `tail -f` sees them within a second.
  // Throws RunWriteError when they cannot be written.
  void append_metrics(const nlohmann::json& record);
  void flush_metrics();

 private:
  std::string path_;
  RunDirectoryLock lock_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> early_log_;
  std::ofstream metrics_;
  std::chrono::steady_clock::time_point flushed_;
};

// A new run's id: 16 random hexadecimal digits.
std::string new_run_id();

}  // namespace qkv
