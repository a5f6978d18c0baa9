// Shared test fixtures: temporary folders, generated images, the real photo assets.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image_codec.h"

namespace facetex::test {

// A fresh folder under $TMPDIR, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A smooth, seed-dependent RGB test image (gradients + low-frequency blobs + a little noise): compresses like
// a photo, not like white noise, and differs per seed.
data::Image make_image(int width, int height, uint64_t seed);

// Writes `count` generated images into `dir` as img_000.png ... (or .jpg), returns their paths.
std::vector<std::filesystem::path> write_images(const std::filesystem::path& dir, int count, int width, int height,
                                                const std::string& ext = ".png", uint64_t seed = 1);

void write_bytes(const std::filesystem::path& path, const std::string& bytes);
std::string read_bytes(const std::filesystem::path& path);

// The real-photo assets (scripts/fetch_assets.sh): $FACETEX_ASSETS or <source dir>/assets.
// When they are missing the test is skipped — unless FACETEX_REQUIRE_ASSETS=1 (set by scripts/test.sh), which
// makes their absence a failure.
std::filesystem::path assets_dir();
bool assets_available(std::string* why);
#define FACETEX_REQUIRE_ASSETS()                                                                 \
  do {                                                                                           \
    std::string why_;                                                                            \
    if (!::facetex::test::assets_available(&why_)) {                                             \
      if (std::getenv("FACETEX_REQUIRE_ASSETS") && std::string(std::getenv("FACETEX_REQUIRE_ASSETS")) == "1") { \
        FAIL() << why_;                                                                          \
      }                                                                                          \
      GTEST_SKIP() << why_;                                                                      \
    }                                                                                            \
  } while (0)

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs a shell command line, capturing stdout and stderr.
CommandResult run_command(const std::string& command_line);

}  // namespace facetex::test
