#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qkv {

// Runs one data-parallel job of `nproc` workers on this machine, as torchrun would: each worker
// is `argv` with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and MASTER_PORT in its
// environment. SIGINT and SIGTERM are passed on to the workers. When a worker fails, the others
// get SIGTERM. Returns 0 when every worker exits 0, else the first failure's exit status
// (128 + signal for a worker killed by a signal).
int run_local_workers(const std::vector<std::string>& argv, int nproc, uint16_t master_port);

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
uint16_t free_local_port();

}  // namespace qkv
