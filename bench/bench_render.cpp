// Render + sample + composite of a BFM-sized face mesh (docs/benchmarks.md explains the columns): rasterise a
// batch of posed meshes, sample the UV texture, composite over a background, and the texture gradient of the
// composite — per image, on the CPU and, when there is one, on the GPU (CUDA rasteriser) in the same run.
// paper-system-spec target: <= 2 ms per image at 1024^2 on a GPU, so rendering stays under 10% of a training step.
//
//   build/bench/bench_render [--resolutions 1024,256] [--batch B] [--grid N] [--texture R] [--iters N]
//                            [--device cpu|cuda|both] [--threads T]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/fatal_signal.h"
#include "kernels/dispatch.h"
#include "kernels/rasterize.h"
#include "models/face3d/renderer.h"
#include "tests/render/synthetic_face_mesh.h"

using namespace facetex;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<int> resolutions = {1024, 256};
  int batch = 8, grid = 189, texture = 1024, iters = 0;  // iters 0: 3 on the CPU, 20 on the GPU
  std::string device = "both";
  int threads = 0;  // CPU intra-op threads; 0: one per hardware thread
};

struct Timings {
  double raster = 0, sample = 0, composite = 0, backward = 0;  // ms per image
  double covered = 0;                                          // fraction of pixels covered by the face
};

void sync(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Best of `iters` runs of fn (after one warm-up), in ms per image.
double best_ms_per_image(const std::function<void()>& fn, const at::Device& device, int iters, int batch) {
  fn();
  sync(device);
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    sync(device);
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best / batch;
}

Timings measure(const test::FaceMesh& mesh, const at::Tensor& screen, int resolution, int texture_res,
                const at::Device& device, int iters) {
  const int64_t batch = screen.size(0);
  const at::Tensor v = screen.to(device), faces = mesh.faces.to(device), uv = mesh.uv.to(device);
  const at::Tensor texture = (at::rand({batch, 3, texture_res, texture_res}) * 2 - 1).to(device).requires_grad_(true);
  const at::Tensor background = (at::rand({batch, 3, resolution, resolution}) * 2 - 1).to(device);
  Timings t;
  kernels::RasterOutput raster;
  models::face3d::Rendered rendered;
  at::Tensor composed;
  t.raster =
      best_ms_per_image([&] { raster = kernels::rasterize(v, faces, resolution, resolution); }, device, iters, batch);
  t.sample = best_ms_per_image([&] { rendered = models::face3d::render_uv_texture(texture, uv, faces, raster); },
                               device, iters, batch);
  t.composite = best_ms_per_image(
      [&] { composed = models::face3d::composite(background, rendered.rgb, rendered.mask); }, device, iters, batch);
  // What training adds: the gradient of a loss on the composite with respect to the texture (grid_sampler backward).
  t.backward = best_ms_per_image(
                   [&] {
                     const at::Tensor c = models::face3d::composite(
                         background, models::face3d::render_uv_texture(texture, uv, faces, raster).rgb, rendered.mask);
                     torch::autograd::grad({c.sum()}, {texture});
                   },
                   device, iters, batch) -
               t.sample - t.composite;
  t.covered = rendered.mask.mean().item<double>();
  return t;
}

// Milliseconds per MiB to allocate and first-touch fresh memory (best of 3 x 64 MiB). Each forward pass allocates
// its outputs anew, so this is a floor under the CPU columns; on sandboxed machines (gVisor) a page fault costs
// microseconds and the floor dominates.
double first_touch_ms_per_mib() {
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    at::Tensor t = at::empty({16 << 20}, at::kFloat);
    t.fill_(0.0f);
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 64.0);
  }
  return best;
}

// Fresh bytes per rendered pixel: raster outputs (face 4 + barycentrics 12 + depth 4), sampling grid 8, sampled
// RGB 12, mask 1 (bool) + 4, composite 12.
constexpr double kFreshBytesPerPixel = 57;

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_render");
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--resolutions")
      o.resolutions = parse_list(v);
    else if (k == "--batch")
      o.batch = std::atoi(v.c_str());
    else if (k == "--grid")
      o.grid = std::atoi(v.c_str());
    else if (k == "--texture")
      o.texture = std::atoi(v.c_str());
    else if (k == "--iters")
      o.iters = std::atoi(v.c_str());
    else if (k == "--device")
      o.device = v;
    else if (k == "--threads")
      o.threads = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  // OpenMP may start with a single thread in containers; the CPU figures are meant for the whole machine.
  at::set_num_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const bool have_cuda = torch::cuda::is_available();
  if (o.device == "cuda" && !have_cuda) {
    std::fprintf(stderr, "no CUDA device in this build/machine\n");
    return 2;
  }
  std::vector<at::Device> devices;
  if (o.device != "cuda") devices.emplace_back(at::kCPU);
  if (o.device != "cpu" && have_cuda) devices.emplace_back(at::kCUDA);

  at::manual_seed(0);
  const test::FaceMesh mesh = test::make_face_mesh(o.grid);
  // Poses spread over +-40 degrees of yaw, as the pose edit in training spreads them.
  std::vector<double> yaws;
  for (int b = 0; b < o.batch; ++b) yaws.push_back(o.batch > 1 ? -40.0 + 80.0 * b / (o.batch - 1) : 0.0);
  std::printf(
      "# render + sample + composite: mesh %lld vertices / %lld triangles, texture %dx%d, batch %d, "
      "CPU intra-op threads %d, kernels %s\n",
      static_cast<long long>(mesh.vertices.size(0)), static_cast<long long>(mesh.faces.size(0)), o.texture, o.texture,
      o.batch, at::get_num_threads(), have_cuda ? "CPU + CUDA" : "CPU only (no CUDA device/build)");
  const double touch = first_touch_ms_per_mib();
  std::printf("# ms per image (best of N); target on a GPU at 1024^2: raster+sample+composite <= 2 ms per image\n");
  std::printf(
      "# first touch of fresh CPU memory: %.3f ms per MiB; 'touch' = the forward's %.0f fresh bytes per pixel "
      "at that rate\n",
      touch, kFreshBytesPerPixel);
  std::printf("%-6s %5s %5s %8s | %9s %9s %9s %9s | %9s | %9s | %s\n", "device", "res", "batch", "covered", "raster",
              "sample", "composite", "total", "touch", "tex.grad", "vs CPU");
  for (int resolution : o.resolutions) {
    const at::Tensor screen = test::project_face(mesh.vertices, yaws, resolution, resolution);
    double cpu_total = 0;
    for (const at::Device& device : devices) {
      const int iters = o.iters > 0 ? o.iters : (device.is_cuda() ? 20 : 3);
      const Timings t = measure(mesh, screen, resolution, o.texture, device, iters);
      const double total = t.raster + t.sample + t.composite;
      if (device.is_cpu()) cpu_total = total;
      char ratio[64] = "";
      if (device.is_cuda() && cpu_total > 0) std::snprintf(ratio, sizeof ratio, "%.1fx faster", cpu_total / total);
      const char* target = device.is_cuda() && resolution == 1024
                               ? (total <= 2.0 ? " (target <= 2 ms: met)" : " (target <= 2 ms: MISSED)")
                               : "";
      char floor[32] = "-";  // the GPU's allocator caches, so there is no first-touch floor there
      if (device.is_cpu()) {
        std::snprintf(floor, sizeof floor, "%.3f",
                      touch * kFreshBytesPerPixel * resolution * resolution / (1024.0 * 1024.0));
      }
      std::printf("%-6s %5d %5d %7.1f%% | %9.3f %9.3f %9.3f %9.3f | %9s | %9.3f | %s%s\n",
                  device.is_cuda() ? "cuda" : "cpu", resolution, o.batch, 100.0 * t.covered, t.raster, t.sample,
                  t.composite, total, floor, t.backward, ratio, target);
    }
  }
  return 0;
}
