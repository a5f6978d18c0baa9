// Finished output is never damaged: every artefact (shard, manifest, checkpoint, result) is written to a
// temporary name in the same directory, fsync'ed, renamed over the final name and the directory fsync'ed.
// A crash leaves either the old file or the new one, plus at most a "*.partial-<host>-<pid>" leftover that no
// reader mistakes for output.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace facetex {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path final_path);
  ~AtomicFile();  // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Where to write (create/truncate it yourself, e.g. with H5Fcreate or std::ofstream).
  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // fsync the temporary file, rename it over the final name, fsync the directory.
  void commit();

 private:
  std::filesystem::path final_, temp_;
  bool committed_ = false;
};

// Marker of temporary files written by AtomicFile (readers skip names containing it).
constexpr std::string_view kPartialMarker = ".partial-";

// Removes the temporary files an interrupted write left in `dir`: those of `final_name` ("<final_name>.partial-*"),
// or, with final_name empty, every name holding the marker. Only for files no other process may be writing now (a
// task's own outputs, a folder under a FolderLock). Returns how many went.
int remove_partial_files(const std::filesystem::path& dir, const std::string& final_name = "");

void write_file_atomic(const std::filesystem::path& path, std::string_view contents);
// Whole file as bytes; DataError naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace facetex
