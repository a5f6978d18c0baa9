// The input image collection of `data pack`: a folder (searched recursively) or a .zip archive (FFHQ ships as
// zips). Items are PNG/JPEG files by extension, sorted by their relative path, so every Slurm array task sees
// the same order and `--part i/N` splits it identically.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace facetex::data {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  int64_t size() const { return static_cast<int64_t>(keys_.size()); }
  // Relative path inside the folder/archive (stored as the row's key).
  const std::string& key(int64_t i) const { return keys_.at(static_cast<size_t>(i)); }
  // The file's bytes; DataError naming the file when it cannot be read. Thread-safe.
  virtual std::string read(int64_t i) const = 0;
  // Full name for messages: "DIR/KEY" or "ARCHIVE.zip:KEY".
  virtual std::string describe(int64_t i) const = 0;
  // Size and modification time, cheap to get (no read): what `data pack` hashes to notice changed inputs.
  virtual std::string stamp(int64_t i) const = 0;
  int64_t ignored_files() const { return ignored_; }

 protected:
  std::vector<std::string> keys_;
  int64_t ignored_ = 0;
};

// Opens a folder or a .zip. DataError when it does not exist, cannot be read, or holds no PNG/JPEG file.
std::unique_ptr<ImageSource> open_image_source(const std::string& path);

bool has_image_extension(const std::string& name);

}  // namespace facetex::data
