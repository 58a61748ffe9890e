#include "qkv/train/run_directory_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

namespace qkv {

namespace fs = std::filesystem;

RunDirectoryLocked::RunDirectoryLocked(const std::string& run_dir, long holder_pid)
    : std::runtime_error("run directory " + run_dir + " is in use by " +
                         (holder_pid > 0 ? "process " + std::to_string(holder_pid)
                                         : std::string("another process"))),
      holder_pid_(holder_pid) {}

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir) {
  fs::create_directories(run_dir);
  const std::string path = run_dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  // Byte 0 carries an open-file-description lock: unlike a classic POSIX lock it also excludes a
  // second claim from the same process, and closing another descriptor of the file does not
  // drop it. Such locks do not report their owner, so byte 1 carries a classic lock as well,
  // whose owner F_GETLK reports. Nothing is written into the file.
  struct flock claim {};
  claim.l_type = F_WRLCK;
  claim.l_whence = SEEK_SET;
  claim.l_start = 0;
  claim.l_len = 1;
  struct flock owner = claim;
  owner.l_start = 1;
  if (::fcntl(fd_, F_OFD_SETLK, &claim) == 0) {
    ::fcntl(fd_, F_SETLK, &owner);  // only for the message a second claimant prints
    return;
  }
  const int error = errno;
  const bool known = ::fcntl(fd_, F_GETLK, &owner) == 0 && owner.l_type != F_UNLCK;
  ::close(fd_);
  fd_ = -1;
  if (error == EACCES || error == EAGAIN)
    throw RunDirectoryLocked(run_dir, known ? owner.l_pid : -1);
  throw std::runtime_error("cannot lock " + path + ": " + std::strerror(error));
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the lock
}

int remove_stale_temporary_files(const std::string& dir) {
  static const std::regex temporary(R"(.+\.tmp\.(\d{1,9}))");
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!entry.is_regular_file() || !std::regex_match(name, m, temporary)) continue;
    const long pid = std::stol(m[1].str());
    if (pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // its writer lives
    if (fs::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace qkv
