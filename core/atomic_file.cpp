#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace facetex {
namespace {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "host";
  return buf;
}

void fsync_path(const std::filesystem::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  FACETEX_CHECK_RUNTIME(fd >= 0, "cannot open {} for fsync: {}", p.string(), std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems (and gVisor for directories) reject fsync on directories with EINVAL; that is not data loss.
  FACETEX_CHECK_RUNTIME(rc == 0 || (directory && (err == EINVAL || err == EROFS)), "fsync {} failed: {}", p.string(),
                        std::strerror(err));
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path final_path) : final_(std::move(final_path)) {
  static std::atomic<int> counter{0};
  temp_ = final_;
  temp_ += fmt::format("{}{}-{}-{}", kPartialMarker, host_name(), ::getpid(), counter++);
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
  }
}

void AtomicFile::commit() {
  FACETEX_CHECK_RUNTIME(!committed_, "AtomicFile {} committed twice", final_.string());
  fsync_path(temp_, false);
  std::error_code ec;
  std::filesystem::rename(temp_, final_, ec);
  FACETEX_CHECK_RUNTIME(!ec, "cannot rename {} to {}: {}", temp_.string(), final_.string(), ec.message());
  committed_ = true;
  fsync_path(final_.has_parent_path() ? final_.parent_path() : std::filesystem::path("."), true);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    FACETEX_CHECK_RUNTIME(out.good(), "cannot create {}: {}", file.temp_path().string(), std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    FACETEX_CHECK_RUNTIME(out.good(), "cannot write {}: {}", file.temp_path().string(), std::strerror(errno));
  }
  file.commit();
}

int remove_partial_files(const std::filesystem::path& dir, const std::string& final_name) {
  std::error_code ec;
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool partial = final_name.empty() ? name.find(kPartialMarker) != std::string::npos
                                            : name.rfind(final_name + std::string(kPartialMarker), 0) == 0;
    if (partial && std::filesystem::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  FACETEX_CHECK_DATA(in.good(), "{}: cannot open: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  FACETEX_CHECK_DATA(!in.bad(), "{}: read error", path.string());
  return ss.str();
}

}  // namespace facetex
