#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

// The exit status of a worker of run_local_workers whose collective failed (CollectiveFailed):
// it says nothing itself, and the launcher names the rank that brought the job down.
constexpr int kLostContactExit = 75;

// The worker that ended a job: the first to fail other than by losing contact with the others
// (they all lose contact when one leaves), else the first to fail.
struct FailedWorker {
  int rank = -1;                 // -1: none failed
  int status = 0;                // as waitpid gave it
  std::string describe() const;  // "rank 1 was killed by signal 9 (Killed)", ...
};

// Runs one data-parallel job of `nproc` workers on this machine, as torchrun would: each worker
// is `argv` with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT and
// QKV_LOCAL_WORKER=1 in its environment. SIGINT and SIGTERM are passed on to the workers, and a
// worker gets SIGTERM when the launcher dies. When a worker fails, the others get SIGTERM.
// Returns 0 when every worker exits 0, else the first failure's exit status (128 + signal for a
// worker killed by a signal), and in `failed` the worker that ended the job.
int run_local_workers(const std::vector<std::string>& argv, int nproc, uint16_t master_port,
                      FailedWorker* failed = nullptr);

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
uint16_t free_local_port();

}  // namespace qkv
