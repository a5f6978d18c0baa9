#include "core/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace facetex {

FolderLock::FolderLock(const std::filesystem::path& dir, const std::string& name, const std::string& what) {
  const std::filesystem::path file = dir / (".facetex-lock-" + name);
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FACETEX_CHECK_RUNTIME(fd_ >= 0, "{}: cannot create the lock file: {}", file.string(), std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  if (err == EWOULDBLOCK) {
    ::close(fd_);
    fd_ = -1;
    throw UsageError(fmt::format("{}: another {} is writing into this folder (it holds {}); wait for it to end, or "
                                 "choose another output folder",
                                 dir.string(), what, file.filename().string()));
  }
  log::get("core").warn("{}: cannot lock ({}); going on without protection against a second job in this folder",
                        file.string(), std::strerror(err));
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock; the file stays (removing it would race a new holder)
}

}  // namespace facetex
