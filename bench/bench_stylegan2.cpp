// G+D forward+backward throughput of facetex's StyleGAN2 networks (docs/benchmarks.md explains the columns).
// Each configuration runs with the ATen reference kernels and with the default kernel choice (CUDA kernels on a
// GPU), side by side, so the printed ratio is measured in one run on one machine.
//
//   build/bench/bench_stylegan2 [--device cpu|cuda] [--resolution R] [--batch B] [--iters N] [--config small|f]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/fatal_signal.h"
#include "core/log.h"
#include "kernels/dispatch.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"

using namespace facetex;
using namespace facetex::models::stylegan2;
using Clock = std::chrono::steady_clock;

namespace {

int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(true)) n += p.numel();
  return n;
}

struct Nets {
  std::shared_ptr<Generator> G;
  std::shared_ptr<Discriminator> D;
};

// "small": the CPU-sized configuration used by the synth64 preset's scale (channel_base 4096, channel_max 128);
// "f": StyleGAN2 config F (channel_base 32768, channel_max 512, mapping 8 layers, 512-d latents).
Nets build(const std::string& config, int resolution, bool fp16) {
  GeneratorConfig g;
  DiscriminatorConfig d;
  g.img_resolution = d.img_resolution = resolution;
  if (config == "small") {
    g.z_dim = g.w_dim = 128;
    g.mapping.num_layers = 4;
    g.synthesis.channel_base = d.channel_base = 4096;
    g.synthesis.channel_max = d.channel_max = 128;
  }
  if (fp16) {
    g.synthesis.num_fp16_res = d.num_fp16_res = 4;
    g.synthesis.conv_clamp = d.conv_clamp = 256;
  }
  g.synthesis.w_dim = g.w_dim;
  g.synthesis.img_resolution = resolution;
  g.mapping.z_dim = g.z_dim;
  g.mapping.w_dim = g.w_dim;
  return {std::make_shared<Generator>(g), std::make_shared<Discriminator>(d)};
}

// One Gmain + Dmain pass: non-saturating losses, gradients for G and D (no optimiser step).
void step(Nets& n, int batch, const at::TensorOptions& opt) {
  at::Tensor z = at::randn({batch, n.G->config().z_dim}, opt);
  at::Tensor real = at::rand({batch, 3, n.G->config().img_resolution, n.G->config().img_resolution}, opt) * 2 - 1;
  at::Tensor fake = n.G->forward(z);
  at::softplus(-n.D->forward(fake)).mean().backward();
  at::Tensor loss_d = at::softplus(n.D->forward(fake.detach())).mean() + at::softplus(-n.D->forward(real)).mean();
  loss_d.backward();
}

double images_per_second(Nets& n, int batch, int iters, const at::TensorOptions& opt) {
  step(n, batch, opt);  // warm-up (allocations, cuDNN autotuning)
  if (opt.device().is_cuda()) torch::cuda::synchronize();
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) step(n, batch, opt);
  if (opt.device().is_cuda()) torch::cuda::synchronize();
  return batch * iters / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_stylegan2");
  std::string device = "cpu", config = "small";
  int resolution = 64, batch = 8, iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device = v;
    else if (k == "--config") config = v;
    else if (k == "--resolution") resolution = std::atoi(v.c_str());
    else if (k == "--batch") batch = std::atoi(v.c_str());
    else if (k == "--iters") iters = std::atoi(v.c_str());
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  log::init(log::Options{0, false, "warn"});
  const bool cuda = device == "cuda";
  if (cuda && !torch::cuda::is_available()) {
    std::fprintf(stderr, "no CUDA device in this build/machine\n");
    return 2;
  }
  at::manual_seed(0);
  if (cuda) at::globalContext().setBenchmarkCuDNN(true);  // as the reference training loop does
  const at::TensorOptions opt = at::TensorOptions().device(cuda ? at::kCUDA : at::kCPU);
  Nets n = build(config, resolution, cuda);
  n.G->to(opt.device());
  n.D->to(opt.device());
  n.G->train();
  n.D->train();
  std::printf("# G+D forward+backward (Gmain + Dmain, no optimiser step): %s, %dx%d, config %s, batch %d, %d iters\n",
              device.c_str(), resolution, resolution, config.c_str(), batch, iters);
  std::printf("# G %lld parameters, D %lld parameters, intra-op threads %d\n",
              static_cast<long long>(parameter_count(*n.G)), static_cast<long long>(parameter_count(*n.D)),
              at::get_num_threads());
  kernels::set_default_impl(kernels::Impl::kReference);
  const double ref = images_per_second(n, batch, iters, opt);
  kernels::set_default_impl(kernels::Impl::kAuto);
  const double fast = images_per_second(n, batch, iters, opt);
  std::printf("%-10s %-6s %5d %6d | %12s %10.2f\n", device.c_str(), config.c_str(), resolution, batch, "ATen ref", ref);
  std::printf("%-10s %-6s %5d %6d | %12s %10.2f | ratio %.2f\n", device.c_str(), config.c_str(), resolution, batch,
              cuda ? "CUDA kernels" : "default", fast, fast / ref);
  return 0;
}
