// Loader throughput against a plain sequential read of the same shard bytes (docs/benchmarks.md explains every
// column). One run measures both side by side on the same files, so the ratio is meaningful on any machine.
//
//   build/bench/bench_loader [--images-256 N] [--images-1024 N] [--repeat R] [--dir DIR]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/fatal_signal.h"
#include "core/log.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/sampler.h"

namespace fs = std::filesystem;
using namespace facetex;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A photo-like image: smooth colour fields plus mild noise, so PNG compresses it about as well as a face photo.
data::Image synthetic(int side, uint64_t seed) {
  data::SplitMix64 rng(seed);
  auto u = [&] { return (rng.next() >> 11) * (1.0 / 9007199254740992.0); };
  double a[3], b[3], c[3];
  for (int k = 0; k < 3; ++k) a[k] = 2 + 4 * u(), b[k] = 2 + 4 * u(), c[k] = 6.28 * u();
  data::Image img{side, side, std::vector<uint8_t>(size_t(side) * side * 3)};
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      for (int k = 0; k < 3; ++k) {
        double v = 128 + 90 * std::sin(a[k] * x / side * 3.14 + c[k]) * std::cos(b[k] * y / side * 3.14) + 8 * (u() - 0.5);
        img.rgb[(size_t(y) * side + x) * 3 + k] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    }
  }
  return img;
}

// Reads every shard file front to back with read(2) into one reused buffer: the floor cost of touching the same
// bytes. The best of several buffer sizes is taken, so the baseline is the fastest plain read on this machine.
double plain_read_seconds(const fs::path& dir, size_t block) {
  static std::vector<char> buf;
  buf.assign(block, 1);  // touched, so page faults are not part of the measurement
  auto t0 = Clock::now();
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".h5") continue;
    int fd = ::open(e.path().c_str(), O_RDONLY);
    while (::read(fd, buf.data(), block) > 0) {
    }
    ::close(fd);
  }
  return seconds_since(t0);
}

double stream_seconds(const std::shared_ptr<const data::Dataset>& ds, int threads, int64_t batch) {
  data::LoaderOptions o;
  o.batch = batch;
  o.threads = threads;
  o.limit = ds->size();
  data::StreamingLoader loader(ds, o);
  auto t0 = Clock::now();
  int64_t n = 0;
  while (auto b = loader.next()) n += b->size;
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_loader");
  int64_t images_256 = 512, images_1024 = 48;
  int repeat = 5;
  fs::path dir = fs::temp_directory_path() / "facetex-bench-loader";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--images-256") images_256 = std::atoll(argv[i + 1]);
    else if (k == "--images-1024") images_1024 = std::atoll(argv[i + 1]);
    else if (k == "--repeat") repeat = std::atoi(argv[i + 1]);
    else if (k == "--dir") dir = argv[i + 1];
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  log::init(log::Options{0, false, "warn"});
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> thread_counts = {1, 2};
  if (all > 2) thread_counts.push_back(all);

  std::printf("# facetex loader benchmark: %d hardware threads, best of %d interleaved runs, page cache warm\n", all,
              repeat);
  std::printf("# %-5s %-7s %6s %7s | %10s %9s | %10s %9s | %6s %7s\n", "res", "storage", "images", "threads",
              "loader/s", "MiB/s", "plain/s", "MiB/s", "ratio", "scaling");
  for (auto [side, count] : {std::pair<int, int64_t>{256, images_256}, {1024, images_1024}}) {
    if (count <= 0) continue;
    const fs::path src = dir / fmt::format("src-{}", side);
    if (!fs::exists(src / fmt::format("img_{:05d}.png", count - 1))) {
      fs::create_directories(src);
      for (int64_t i = 0; i < count; ++i) {
        data::write_png((src / fmt::format("img_{:05d}.png", i)).string(), synthetic(side, 1000 + i));
      }
    }
    for (data::Storage storage : {data::Storage::kRaw, data::Storage::kPng}) {
      const fs::path out = dir / fmt::format("{}-{}", data::storage_name(storage), side);
      data::PackOptions po;
      po.images = src.string();
      po.out = out;
      po.storage = storage;
      po.shard_size = side == 1024 ? 16 : 128;
      po.overwrite = true;
      data::pack_images(po);
      auto ds = data::Dataset::open(out);
      int64_t bytes = 0;
      for (const auto& s : ds->manifest().shards) bytes += s.bytes;
      const double mib = bytes / 1048576.0;
      plain_read_seconds(out, 1 << 20);  // warm the page cache
      // Interleaved repeats: file-read speed on shared machines drifts (it changed 4x between runs here), so the
      // plain read and every loader setting get their turns side by side and each keeps its best time.
      const std::vector<size_t> blocks = {size_t(64) << 10, size_t(1) << 20, size_t(4) << 20};
      const int64_t batch = side == 1024 ? 4 : 32;
      double plain = 1e30;
      std::vector<double> loader(thread_counts.size(), 1e30);
      for (int rep = 0; rep < repeat; ++rep) {
        for (size_t block : blocks) plain = std::min(plain, plain_read_seconds(out, block));
        for (size_t t = 0; t < thread_counts.size(); ++t) {
          loader[t] = std::min(loader[t], stream_seconds(ds, thread_counts[t], batch));
        }
      }
      for (size_t t = 0; t < thread_counts.size(); ++t) {
        const double s = loader[t];
        std::printf("  %-5d %-7s %6lld %7d | %10.1f %9.1f | %10.1f %9.1f | %6.2f %6.2fx\n", side,
                    data::storage_name(storage).c_str(), static_cast<long long>(count), thread_counts[t], count / s,
                    mib / s, count / plain, mib / plain, plain / s, loader[0] / s);
      }
    }
  }
  std::printf("# ratio = loader images/s / plain-read images/s of the same shard files; scaling = vs 1 thread\n");
  return 0;
}
