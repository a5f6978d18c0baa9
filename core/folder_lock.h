// An exclusive advisory lock (flock) on a hidden file in an output folder, held while a job writes there. Two jobs
// writing the same outputs at once would each check the folder at their start, find it consistent, and then replace
// each other's files (two `data pack` runs with different settings into one folder left shards of one under the
// manifest of the other). The second job is refused instead. The kernel drops the lock when its holder exits, however
// it ends (a requeued Slurm job finds it free). File systems without flock support are logged and not locked.
#pragma once

#include <filesystem>
#include <string>

namespace facetex {

class FolderLock {
 public:
  // Locks `dir/.facetex-lock-<name>` (dir must exist). UsageError naming the folder and `what` (e.g. "data pack
  // (dataset.json)") when another process holds the lock.
  FolderLock(const std::filesystem::path& dir, const std::string& name, const std::string& what);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace facetex
