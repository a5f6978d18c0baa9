#include "data/image_source.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <mutex>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace facetex::data {
namespace {

class FolderSource : public ImageSource {
 public:
  explicit FolderSource(fs::path root) : root_(std::move(root)) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root_, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      FACETEX_CHECK_DATA(!ec, "{}: cannot list folder: {}", root_.string(), ec.message());
      if (!it->is_regular_file(ec)) continue;
      std::string rel = fs::relative(it->path(), root_, ec).generic_string();
      if (has_image_extension(rel)) {
        keys_.push_back(rel);
      } else {
        ++ignored_;
      }
    }
    FACETEX_CHECK_DATA(!ec, "{}: cannot list folder: {}", root_.string(), ec.message());
    std::sort(keys_.begin(), keys_.end());
  }
  std::string read(int64_t i) const override { return read_file(root_ / key(i)); }
  std::string describe(int64_t i) const override { return (root_ / key(i)).string(); }
  std::string stamp(int64_t i) const override {
    std::error_code size_ec, time_ec;
    const fs::path p = root_ / key(i);
    const auto size = fs::file_size(p, size_ec);
    const auto mtime = fs::last_write_time(p, time_ec).time_since_epoch().count();
    return fmt::format("{}:{}", size_ec ? 0 : size, time_ec ? 0 : mtime);
  }

 private:
  fs::path root_;
};

class ZipSource : public ImageSource {
 public:
  explicit ZipSource(std::string path) : path_(std::move(path)) {
    int err = 0;
    zip_ = zip_open(path_.c_str(), ZIP_RDONLY, &err);
    if (zip_ == nullptr) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, err);
      std::string msg = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      throw DataError(fmt::format("{}: cannot open zip archive: {}", path_, msg));
    }
    zip_int64_t n = zip_get_num_entries(zip_, 0);
    std::vector<std::pair<std::string, zip_uint64_t>> entries;
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), 0);
      if (name == nullptr) continue;
      std::string s = name;
      if (!s.empty() && s.back() == '/') continue;  // folder entry
      if (has_image_extension(s)) {
        entries.emplace_back(s, static_cast<zip_uint64_t>(i));
      } else {
        ++ignored_;
      }
    }
    std::sort(entries.begin(), entries.end());
    for (auto& [name, index] : entries) {
      keys_.push_back(name);
      index_.push_back(index);
    }
  }
  ~ZipSource() override {
    if (zip_) zip_discard(zip_);
  }

  std::string read(int64_t i) const override {
    // libzip archives are not thread-safe: reads are serialised; decoding happens outside the lock.
    std::lock_guard<std::mutex> lock(mu_);
    zip_uint64_t index = index_.at(static_cast<size_t>(i));
    zip_stat_t st;
    FACETEX_CHECK_DATA(zip_stat_index(zip_, index, 0, &st) == 0, "{}: cannot stat entry: {}", describe(i),
                       zip_strerror(zip_));
    zip_file_t* f = zip_fopen_index(zip_, index, 0);
    FACETEX_CHECK_DATA(f != nullptr, "{}: cannot open entry: {}", describe(i), zip_strerror(zip_));
    std::string data(static_cast<size_t>(st.size), '\0');
    zip_int64_t got = zip_fread(f, data.data(), st.size);
    std::string ferr = got < 0 ? zip_file_strerror(f) : "";
    zip_fclose(f);
    FACETEX_CHECK_DATA(got == static_cast<zip_int64_t>(st.size), "{}: cannot read entry: {}", describe(i),
                       ferr.empty() ? "short read" : ferr);
    return data;
  }
  std::string describe(int64_t i) const override { return path_ + ":" + key(i); }
  std::string stamp(int64_t i) const override {
    std::lock_guard<std::mutex> lock(mu_);
    zip_stat_t st;
    if (zip_stat_index(zip_, index_.at(static_cast<size_t>(i)), 0, &st) != 0) return "?";
    return fmt::format("{}:{}:{:08x}", st.size, static_cast<int64_t>(st.mtime), st.crc);
  }

 private:
  std::string path_;
  zip_t* zip_ = nullptr;
  std::vector<zip_uint64_t> index_;
  mutable std::mutex mu_;
};

bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.rbegin(), suffix.rend(), s.rbegin(),
                    [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
}

}  // namespace

bool has_image_extension(const std::string& name) {
  return ends_with_ci(name, ".png") || ends_with_ci(name, ".jpg") || ends_with_ci(name, ".jpeg");
}

std::unique_ptr<ImageSource> open_image_source(const std::string& path) {
  std::error_code ec;
  FACETEX_CHECK_DATA(fs::exists(path, ec), "{}: no such file or folder", path);
  std::unique_ptr<ImageSource> source;
  if (fs::is_directory(path, ec)) {
    source = std::make_unique<FolderSource>(path);
  } else if (ends_with_ci(path, ".zip")) {
    source = std::make_unique<ZipSource>(path);
  } else {
    throw DataError(fmt::format("{}: --images must be a folder or a .zip archive", path));
  }
  FACETEX_CHECK_DATA(source->size() > 0, "{}: no PNG/JPEG images found ({} other files ignored)", path,
                     source->ignored_files());
  return source;
}

}  // namespace facetex::data
