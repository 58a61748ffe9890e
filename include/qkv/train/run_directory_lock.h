#pragma once

#include <stdexcept>
#include <string>

namespace qkv {

// Another live process holds the run directory.
class RunDirectoryLocked : public std::runtime_error {
 public:
  RunDirectoryLocked(const std::string& run_dir, long holder_pid);
  long holder_pid() const { return holder_pid_; }

 private:
  long holder_pid_;
};

// An exclusive claim on a run directory for as long as the object lives: an advisory write lock
// (fcntl) on RUN_DIR/.lock, which the kernel drops when the process dies, so a kill -9 never
// leaves a stale lock behind. Creates the directory if needed.
class RunDirectoryLock {
 public:
  // Throws RunDirectoryLocked naming the holder's pid when another process has it.
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes the temporary files that atomic writers (write_file_atomically: NAME.tmp.PID) left in
// `dir` when they were killed mid-write: those whose PID no longer runs. Returns how many.
int remove_stale_temporary_files(const std::string& dir);

}  // namespace qkv
