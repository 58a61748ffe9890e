#include "qkv/distributed/local_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace qkv {

namespace {

// The workers, for the signal handler (which may only use what is async-signal-safe).
constexpr int kMaxWorkers = 1024;
volatile pid_t g_workers[kMaxWorkers];
volatile int g_worker_count = 0;

void forward_signal(int sig) {
  for (int i = 0; i < g_worker_count; ++i)
    if (g_workers[i] > 0) kill(g_workers[i], sig);
}

// A worker's status (from waitpid) says it exited because its collective failed.
bool lost_contact(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == kLostContactExit;
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

[[noreturn]] void exec_worker(const std::vector<std::string>& argv, int rank, int nproc,
                              uint16_t port, pid_t launcher) {
  // A launcher killed outright (kill -9) forwards nothing, and its workers would train on,
  // holding the run directory: the kernel sends them SIGTERM instead, which stops the job after
  // the same step with a checkpoint, as a user's SIGTERM does.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != launcher) _exit(1);  // it died before the line above took effect
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  setenv("QKV_LOCAL_WORKER", "1", 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  std::fprintf(stderr, "cannot start worker %d (%s): %s\n", rank, args[0], std::strerror(errno));
  _exit(127);
}

}  // namespace

uint16_t free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
    close(fd);
    throw std::runtime_error(std::string("no free TCP port on 127.0.0.1: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string FailedWorker::describe() const {
  const std::string who = "rank " + std::to_string(rank);
  if (WIFSIGNALED(status))
    return who + " was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  if (lost_contact(status))
    return who +
           " lost contact with the other ranks (one stopped answering, or the collective "
           "timeout runtime.timeout_s passed)";
  return who + " failed (exit status " + std::to_string(exit_status(status)) + ")";
}

int run_local_workers(const std::vector<std::string>& argv, int nproc, uint16_t master_port,
                      FailedWorker* failed) {
  if (nproc < 1 || nproc > kMaxWorkers)
    throw std::invalid_argument("nproc " + std::to_string(nproc) + ": expected 1 to " +
                                std::to_string(kMaxWorkers));
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  sigemptyset(&forward.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);
  g_worker_count = 0;
  const pid_t launcher = getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) exec_worker(argv, rank, nproc, master_port, launcher);
    if (pid < 0) {
      forward_signal(SIGTERM);
      break;
    }
    g_workers[g_worker_count] = pid;
    g_worker_count = g_worker_count + 1;
  }
  int result = g_worker_count == nproc ? 0 : 1;
  for (int left = g_worker_count; left > 0;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int rank = -1;
    for (int i = 0; i < g_worker_count; ++i)
      if (g_workers[i] == pid) g_workers[i] = -1, rank = i;
    --left;
    if (exit_status(status) == 0) continue;
    // A worker that only lost contact gives way to one that failed for another reason.
    if (failed && (failed->rank < 0 || (lost_contact(failed->status) && !lost_contact(status))))
      *failed = {rank, status};
    if (result == 0) {
      result = exit_status(status);
      forward_signal(SIGTERM);  // the job cannot go on without it
    }
  }
  g_worker_count = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace qkv
