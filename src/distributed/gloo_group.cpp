// ProcessGroupGloo: compiled only where CMake found the Gloo headers (USE_C10D_GLOO is set).
// c10d declares the backend only under this macro; CMake compiles this file only when it can.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "c10d_process_group.h"

namespace qkv {

bool gloo_available() {
  return true;
}

namespace detail {

namespace {

// This machine's address on the route to MASTER_ADDR: what the other ranks can reach us at.
// The hostname's address (Gloo's default) may be one the peers cannot reach, or one that does not
// exist in this network namespace. A UDP connect sends nothing; it only picks the route.
std::string address_towards(const std::string& master_addr, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(master_addr.c_str(), std::to_string(port).c_str(), &hints, &found) != 0)
    throw DistributedError("MASTER_ADDR " + master_addr + " does not resolve to an address");
  std::string local;
  for (auto* a = found; a && local.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, 0);
    if (fd < 0) continue;
    sockaddr_storage self{};
    socklen_t size = sizeof self;
    char text[INET6_ADDRSTRLEN] = {};
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&self), &size) == 0) {
      const void* ip =
          self.ss_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&self)->sin_addr)
              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&self)->sin6_addr);
      if (inet_ntop(self.ss_family, ip, text, sizeof text)) local = text;
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (local.empty()) throw DistributedError("no route to MASTER_ADDR " + master_addr);
  return local;
}

}  // namespace

std::shared_ptr<ProcessGroup> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store,
                                              const LaunchEnvironment& env,
                                              std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // GLOO_SOCKET_IFNAME names the interface, as it does for PyTorch.
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(
        address_towards(env.master_addr, env.master_port)));
  auto group = run_collective(env.rank, "joining the Gloo group", [&] {
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
  });
  return std::make_shared<C10dProcessGroup<c10d::ProcessGroupGloo>>(store, group, env, "gloo");
}

}  // namespace detail
}  // namespace qkv
