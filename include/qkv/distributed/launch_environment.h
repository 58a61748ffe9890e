#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace qkv {

// Where this process stands in a data-parallel job, as launchers say it (torchrun, a cluster
// scheduler, `qkv train --nproc`): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  uint16_t master_port = 29500;

  // The job this process belongs to, or nothing when WORLD_SIZE is unset (a single process).
  // Throws std::invalid_argument naming the variable when one is set but malformed or missing.
  static std::optional<LaunchEnvironment> from_environment();
  // MASTER_PORT when set (a launcher choosing the port for its workers); throws
  // std::invalid_argument naming it when it is not a port number.
  static std::optional<uint16_t> master_port_from_environment();
  // The variables a worker of this job needs, as NAME=VALUE.
  std::string describe() const;
};

}  // namespace qkv
