#include "qkv/distributed/launch_environment.h"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace qkv {

namespace {

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

// A whole number in [low, high] from environment variable `name`.
int64_t integer_variable(const char* name, int64_t low, int64_t high) {
  const char* text = variable(name);
  if (!text) throw std::invalid_argument(std::string(name) + " is not set");
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < low || value > high)
    throw std::invalid_argument(std::string(name) + "=" + text + ": expected a whole number from " +
                                std::to_string(low) + " to " + std::to_string(high));
  return value;
}

}  // namespace

std::optional<LaunchEnvironment> LaunchEnvironment::from_environment() {
  if (!variable("WORLD_SIZE")) {
    if (variable("RANK"))
      throw std::invalid_argument("RANK is set but WORLD_SIZE is not: set both, or neither");
    return std::nullopt;
  }
  LaunchEnvironment env;
  env.world_size = static_cast<int>(integer_variable("WORLD_SIZE", 1, 1 << 20));
  env.rank = static_cast<int>(integer_variable("RANK", 0, env.world_size - 1));
  env.local_rank =
      variable("LOCAL_RANK") ? static_cast<int>(integer_variable("LOCAL_RANK", 0, 1 << 20)) : 0;
  if (const char* addr = variable("MASTER_ADDR"))
    env.master_addr = addr;
  else if (env.world_size > 1)
    throw std::invalid_argument("MASTER_ADDR is not set (rank 0's address, for WORLD_SIZE " +
                                std::to_string(env.world_size) + ")");
  if (const auto port = master_port_from_environment())
    env.master_port = *port;
  else if (env.world_size > 1)
    throw std::invalid_argument("MASTER_PORT is not set (a free TCP port on MASTER_ADDR)");
  return env;
}

std::optional<uint16_t> LaunchEnvironment::master_port_from_environment() {
  if (!variable("MASTER_PORT")) return std::nullopt;
  return static_cast<uint16_t>(integer_variable("MASTER_PORT", 1, 65535));
}

std::string LaunchEnvironment::describe() const {
  return "RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world_size) +
         " LOCAL_RANK=" + std::to_string(local_rank) + " MASTER_ADDR=" + master_addr +
         " MASTER_PORT=" + std::to_string(master_port);
}

}  // namespace qkv
