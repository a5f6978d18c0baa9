// Texture-GAN training step throughput and where its time goes, for both background modes (docs/benchmarks.md).
//
//   build/bench/bench_train_step [--preset synth64] [--device cpu|cuda] [--batch B] [--iters N] [--threads T]
//                                [--resolution R]
// --resolution sets the composite and texture side (model.resolution, model.texture_resolution) on top of the preset,
// e.g. `--preset paper1024 --resolution 256 --device cuda` for the paper's networks at 256².
//
// For each mode (dataset backgrounds; generated backgrounds with random-weight frozen networks and the deterministic
// landmark provider, so the face path — POS, 224 crop, ReconNet — runs for every sample) it prints:
//   step    : Gmain + Dmain through StyleGAN2Loss (what every iteration runs; the lazy Greg/Dreg phases come on top
//             every 4th/16th iteration) — ms and images/s;
//   shares  : the same work timed piece by piece, each forward + backward with the gradients the step needs:
//             frozen (generated mode: 2D G synthesis, DFR, RigNet, POS, crop, ReconNet; no grad),
//             G (mapping + synthesis of the texture), render (rasterise, UV sample, composite; texture gradient),
//             augment (ADA pipe at p = 0.2), D (forward + backward, 3 passes per step: fake in Gmain, fake and real
//             in Dmain) — as % of their sum; "sum/step" says how well the pieces add up to the step.
//   ATen calls: how many LibTorch operator calls the step and each piece make (nested calls included; the CUDA
//             kernels of kernels/ launch outside the dispatcher) — on a GPU the launch count that host time scales with.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/fatal_signal.h"
#include "models/aux/dfr_model.h"
#include "models/aux/recon_net.h"
#include "models/aux/rig_net.h"
#include "models/face3d/morphable_model.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"
#include "train/augment_pipe.h"
#include "train/face_renderer.h"
#include "train/generated_background.h"
#include "train/loss.h"
#include "train/op_census.h"
#include "train/texture_pipeline.h"
#include "train/train_options.h"
#include "train/training_stats.h"

using namespace facetex;
using namespace facetex::train;
namespace sg = facetex::models::stylegan2;
using Clock = std::chrono::steady_clock;

namespace {

void sync(const at::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// ATen calls of the last best_ms() warm-up run (train/op_census.h): on a GPU each computing call is a launch.
int64_t g_last_ops = 0;

// Best of `iters` (after one warm-up, whose ATen calls are counted), ms.
double best_ms(const std::function<void()>& fn, const at::Device& d, int iters) {
  {
    OpCensus census;
    const OpCounts before = census.now();
    fn();
    g_last_ops = (census.now() - before).ops;
  }
  sync(d);
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    sync(d);
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_train_step");
  std::string preset = "synth64", device_name = "cpu";
  int batch = 8, iters = 3, threads = 0, resolution = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--preset") preset = argv[i + 1];
    else if (a == "--device") device_name = argv[i + 1];
    else if (a == "--batch") batch = std::atoi(argv[i + 1]);
    else if (a == "--iters") iters = std::atoi(argv[i + 1]);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--resolution") resolution = std::atoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (threads > 0) at::set_num_threads(threads);
  const at::Device dev = device_name == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  Config cfg = Config::load(preset_path(preset));
  if (resolution > 0) {
    cfg.set_value("model.resolution", std::to_string(resolution));
    cfg.set_value("model.texture_resolution", std::to_string(resolution));
  }
  TrainOptions o = parse_train_options(cfg);
  const int R = o.D.img_resolution;
  o.G.img_resolution = o.G.synthesis.img_resolution = o.texture_resolution > 0 ? o.texture_resolution : R;
  std::printf("bench_train_step: preset %s, %dx%d composites, %dx%d textures, batch %d, %s, %d threads, best of %d\n",
              preset.c_str(), R, R, o.G.img_resolution, o.G.img_resolution, batch, device_name.c_str(),
              at::get_num_threads(), iters);

  at::manual_seed(0);
  sg::Generator G(o.G);
  sg::Discriminator D(o.D);
  G.to(dev);
  D.to(dev);
  auto renderer = std::make_shared<FaceRenderer>(models::face3d::make_synthetic_model({}));
  renderer->to(dev);
  AugmentPipe augment(AugmentOptions::preset("bgc"), 0.2);
  const auto fopts = at::TensorOptions().device(dev);

  // Dataset mode context: backgrounds, the mean face, frontal, centred (crop s = 102 R / 224 puts the principal
  // point at the image centre).
  BatchContext ctx;
  ctx.backgrounds = at::rand({batch, 3, R, R}, fopts) * 2 - 1;
  ctx.coeffs = at::zeros({batch, renderer->layout().total()}, fopts);
  ctx.crops = at::zeros({batch, 3}, fopts);
  ctx.crops.select(1, 2).fill_(102.0 * R / 224.0);

  // Generated mode: random-weight frozen networks sized like the texture G (w_dim 512 for DFR/RigNet).
  sg::GeneratorConfig g2 = o.G;
  g2.w_dim = 512;
  g2.mapping.w_dim = g2.synthesis.w_dim = 512;
  GeneratedBackgroundNets nets;
  nets.trained_G = std::make_shared<sg::Generator>(g2);
  nets.trained_G->eval();
  const int num_ws = static_cast<int>(nets.trained_G->synthesis->num_ws());
  nets.dfr = std::make_shared<models::aux::DFRModel>(num_ws);
  nets.rignet = std::make_shared<models::aux::RigNet>(num_ws);
  nets.recon = std::make_shared<models::aux::ReconNet>();
  nets.detector = std::make_shared<FixedLandmarkProvider>(models::face3d::model_reference_lm3d(renderer->model()), 0.25);
  GeneratedBackgroundPipeline generated(renderer, nets);
  generated.to(dev);
  TexturePipeline dataset_pipeline(renderer);

  for (const char* mode : {"dataset", "generated"}) {
    const bool gen_mode = std::string(mode) == "generated";
    GeneratorPipeline& pipeline = gen_mode ? static_cast<GeneratorPipeline&>(generated) : dataset_pipeline;
    TrainingStats stats;
    LossOptions lo;
    lo.r1_gamma = o.r1_gamma;
    StyleGAN2Loss loss(G, D, &augment, pipeline, lo, stats);
    const at::Tensor z = at::randn({batch, o.G.z_dim}, fopts);
    const at::Tensor reals = at::rand({batch, 3, R, R}, fopts) * 2 - 1;
    auto set_grad = [](torch::nn::Module& m, bool on) {
      for (auto& p : m.parameters(true)) p.set_requires_grad(on);
    };
    int64_t ops[6] = {0, 0, 0, 0, 0, 0};  // step, frozen, G, render, augment, D
    const double step = best_ms([&] {
      set_grad(G, true);
      loss.accumulate_gradients(Phase::kGmain, reals, z, ctx, 1.0);
      set_grad(G, false);
      set_grad(D, true);
      loss.accumulate_gradients(Phase::kDmain, reals, z, ctx, 1.0);
      set_grad(D, false);
    }, dev, iters);
    ops[0] = g_last_ops;

    // The pieces.
    double frozen = 0;
    BatchContext gctx = ctx;
    if (gen_mode) {
      at::Tensor ws2 = nets.trained_G->mapping->forward(z);
      frozen = best_ms([&] {
        at::NoGradGuard ng;
        GeneratedBatch b = generated.make_backgrounds(ws2);
        gctx = {b.backgrounds, b.coeffs, b.bbox};
      }, dev, iters);
      ops[1] = g_last_ops;
    }
    set_grad(G, true);
    at::Tensor texture;
    const double g_ms = best_ms([&] {
      texture = G.forward(z, {});
      texture.backward(at::ones_like(texture));
    }, dev, iters);
    ops[2] = g_last_ops;
    set_grad(G, false);
    const at::Tensor tex = texture.detach().requires_grad_(true);
    at::Tensor composite;
    const double render_ms = best_ms([&] {
      composite = renderer->render_into(tex, gctx.coeffs, gctx.crops, gctx.backgrounds);
      composite.backward(at::ones_like(composite));
    }, dev, iters);
    ops[3] = g_last_ops;
    const at::Tensor img = composite.detach().requires_grad_(true);
    at::Tensor augmented;
    const double augment_ms = best_ms([&] {
      augmented = augment.forward(img);
      augmented.backward(at::ones_like(augmented));
    }, dev, iters);
    ops[4] = g_last_ops;
    const at::Tensor aug = augmented.detach().requires_grad_(true);
    set_grad(D, true);
    const double d_ms = best_ms([&] { at::softplus(D.forward(aug)).mean().backward(); }, dev, iters);
    ops[5] = g_last_ops;
    set_grad(D, false);
    // Per step: G once (Gmain), render once per G pass — Dmain synthesises again without grad (counted as one more
    // G+render pass at roughly a third of the cost: forward only); augment 3 times; D 3 times.
    const double g_total = g_ms * (1 + 1.0 / 3), r_total = render_ms * (1 + 1.0 / 3);
    const double f_total = frozen * 2, a_total = augment_ms * 3, d_total = d_ms * 3;
    const double sum = g_total + r_total + f_total + a_total + d_total;
    std::printf("  %-9s step %8.1f ms  %7.1f img/s | frozen %4.1f%%  G %4.1f%%  render %4.1f%%  augment %4.1f%%  "
                "D %4.1f%% | sum/step %.2f\n",
                mode, step, batch * 1000.0 / step, 100 * f_total / sum, 100 * g_total / sum, 100 * r_total / sum,
                100 * a_total / sum, 100 * d_total / sum, sum / step);
    std::printf("  %-9s ATen calls: step %lld | frozen %lld  G %lld  render %lld  augment %lld  D %lld (each piece once, "
                "forward + backward)\n",
                mode, static_cast<long long>(ops[0]), static_cast<long long>(ops[1]), static_cast<long long>(ops[2]),
                static_cast<long long>(ops[3]), static_cast<long long>(ops[4]), static_cast<long long>(ops[5]));
  }
  return 0;
}
