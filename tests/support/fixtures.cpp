#include "tests/support/fixtures.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "data/sampler.h"

namespace fs = std::filesystem;

namespace facetex::test {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "facetex-test-XXXXXX").string();
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

data::Image make_image(int width, int height, uint64_t seed) {
  data::SplitMix64 rng(seed * 7919 + 17);
  auto uniform = [&] { return (rng.next() >> 11) * (1.0 / 9007199254740992.0); };
  double cx[3], cy[3], phase[3], freq[3];
  for (int c = 0; c < 3; ++c) {
    cx[c] = uniform() * width;
    cy[c] = uniform() * height;
    phase[c] = uniform() * 6.28;
    freq[c] = 2.0 + 6.0 * uniform();
  }
  data::Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        double dx = (x - cx[c]) / width, dy = (y - cy[c]) / height;
        double v = 127.5 + 80 * std::sin(freq[c] * std::sqrt(dx * dx + dy * dy) * 6.28 + phase[c]) +
                   40.0 * x / width - 20.0 * y / height + 6 * (uniform() - 0.5);
        img.rgb[(size_t(y) * width + x) * 3 + c] = static_cast<uint8_t>(std::max(0.0, std::min(255.0, v)));
      }
    }
  }
  return img;
}

std::vector<fs::path> write_images(const fs::path& dir, int count, int width, int height, const std::string& ext,
                                   uint64_t seed) {
  fs::create_directories(dir);
  std::vector<fs::path> out;
  for (int i = 0; i < count; ++i) {
    data::Image img = make_image(width, height, seed * 1000 + i);
    fs::path p = dir / fmt::format("img_{:03d}{}", i, ext);
    write_bytes(p, ext == ".png" ? data::encode_png(img) : data::encode_jpeg(img, 92));
    out.push_back(p);
  }
  return out;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::string read_bytes(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

fs::path assets_dir() {
  if (const char* a = std::getenv("FACETEX_ASSETS"); a && *a) return a;
  const char* src = std::getenv("FACETEX_SOURCE_DIR");
  return fs::path(src ? src : ".") / "assets";
}

bool assets_available(std::string* why) {
  const fs::path probe = assets_dir() / "dlib" / "faces" / "2008_002470.jpg";
  if (fs::exists(probe)) return true;
  *why = "real-photo assets not found at " + assets_dir().string() + " (run scripts/fetch_assets.sh)";
  return false;
}

CommandResult run_command(const std::string& command_line) {
  static int counter = 0;
  const fs::path base = fs::temp_directory_path() / fmt::format("facetex-cmd-{}-{}", getpid(), counter++);
  const std::string out_path = base.string() + ".out", err_path = base.string() + ".err";
  const std::string full = command_line + " >" + out_path + " 2>" + err_path;
  int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_bytes(out_path);
  r.err = read_bytes(err_path);
  std::error_code ec;
  fs::remove(out_path, ec);
  fs::remove(err_path, ec);
  return r;
}

}  // namespace facetex::test
