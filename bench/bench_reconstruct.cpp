// Reconstructed images per hour: `facetex reconstruct`'s library path (train/reconstruct.h) on the same photos with
// the same steps, side by side: the public code's approach (one photo at a time, redoing per photo and per step what
// the public projector redoes: ReconstructOptions::public_baseline), this code at batch 1, and at batch B with the
// default split modulated convolutions and with grouped ones.
//
//   bench_reconstruct [--device cpu|cuda] [--batch 8] [--steps 20] [--crop 256] [--texture 64] [--channels 64]
//                     [--w-dim 128] [--images 8] [--keep DIR] [--synthetic R] [--channel-base B] [--fp16-res N]
//                     [--conv-clamp C] [--lpips-vgg FILE]
// The texture G has min(B / res, --channels) channels at each resolution; B defaults to channels × texture (the same
// width everywhere). Config F at 1024²: --texture 1024 --channels 512 --channel-base 32768 --w-dim 512; a trained
// paper1024 checkpoint also has --fp16-res 4 --conv-clamp 256 (FP16 on the top 4 resolutions, used on CUDA only).
//
// Input photos: the dlib example photos with faces (assets/dlib/faces; $FACETEX_ASSETS or <source>/assets), cycled
// to --images, geometry from dlib's landmarks on the canonical mesh. --synthetic R instead renders --images faces of
// a synthetic world at R² (`facetex data synth`) and takes their exact annotations as landmarks, on the world's own
// face model — no assets needed (the GPU machine has none); the projection, which batching speeds up, is the same.
// The texture generator has random weights (the cost does not depend on the values). Timings: whole job (geometry,
// projection, writing) and projection alone. --lpips-vgg adds the LPIPS term as `facetex reconstruct` does (NVIDIA's
// vgg16.pt, or for cost alone a stand-in with its architecture and random weights: tools/make_lpips_standin.py);
// without it the loss is L1 + noise regularisation and the bench measures G, rendering and the optimiser only.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/fatal_signal.h"
#include "core/version.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "train/annotate.h"
#include "train/reconstruct.h"
#include "train/synthetic_world.h"

namespace fs = std::filesystem;
using namespace facetex;

int main(int argc, char** argv) {
  // Line-buffered: the figures reach a log even if the process dies later; a crash prints a backtrace.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  facetex::install_fatal_signal_report("bench_reconstruct");
  std::string device = "cpu";
  int batch = 8, steps = 20, crop = 256, texture = 64, channels = 64, w_dim = 128, images = 8;
  std::string keep, lpips_vgg;
  int synthetic = 0, channel_base = 0, fp16_res = 0;
  double conv_clamp = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--device") device = v;
    else if (k == "--batch") batch = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--crop") crop = std::stoi(v);
    else if (k == "--texture") texture = std::stoi(v);
    else if (k == "--channels") channels = std::stoi(v);
    else if (k == "--w-dim") w_dim = std::stoi(v);
    else if (k == "--images") images = std::stoi(v);
    else if (k == "--keep") keep = v;
    else if (k == "--synthetic") synthetic = std::stoi(v);
    else if (k == "--channel-base") channel_base = std::stoi(v);
    else if (k == "--fp16-res") fp16_res = std::stoi(v);
    else if (k == "--conv-clamp") conv_clamp = std::stod(v);
    else if (k == "--lpips-vgg") lpips_vgg = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const char* env = std::getenv("FACETEX_ASSETS");
  const fs::path assets = env && *env ? fs::path(env) : fs::path(FACETEX_SOURCE_DIR) / "assets";
  const fs::path faces = assets / "dlib" / "faces";
  if (synthetic == 0 && !fs::is_directory(faces)) {
    std::fprintf(stderr, "%s missing: run scripts/fetch_assets.sh\n", faces.string().c_str());
    return 77;
  }
  const fs::path work = keep.empty() ? fs::temp_directory_path() / fmt::format("bench_reconstruct_{}", ::getpid())
                                     : fs::path(keep);
  fs::remove_all(work);
  fs::create_directories(work / "in");
  if (synthetic > 0) {
    train::SyntheticWorldOptions wo;
    wo.out = work / "world";
    wo.count = images;
    wo.resolution = synthetic;
    train::write_synthetic_world(wo);
  } else {
    const std::vector<std::string> photos = {"2008_002079.jpg", "2008_001322.jpg", "2007_007763.jpg",
                                             "2009_004587.jpg", "2008_002470.jpg", "2008_004176.jpg",
                                             "2008_007676.jpg", "2008_002506.jpg"};
    for (int i = 0; i < images; ++i) {
      fs::copy_file(faces / photos[size_t(i) % photos.size()], work / "in" / fmt::format("img{:03d}.jpg", i));
    }
  }
  namespace sg = models::stylegan2;
  sg::GeneratorConfig c;
  c.z_dim = c.mapping.z_dim = w_dim;
  c.w_dim = c.mapping.w_dim = c.synthesis.w_dim = w_dim;
  c.img_resolution = c.synthesis.img_resolution = texture;
  c.synthesis.channel_base = channel_base > 0 ? channel_base : channels * texture;
  c.synthesis.channel_max = channels;
  // A trained paper1024 checkpoint runs its top 4 resolutions in FP16 with conv_clamp 256 (on CUDA), and the
  // projector uses G as configured, as the public projector does.
  c.synthesis.num_fp16_res = fp16_res;
  if (conv_clamp > 0) c.synthesis.conv_clamp = conv_clamp;
  at::manual_seed(1);
  sg::Generator G(c);
  models::write_weight_file(work / "G.h5", {{"G_ema", models::network_state(G, "Generator", sg::to_init_kwargs(c))}},
                            "random bench weights", "bench_reconstruct");

  train::ReconstructOptions o;
  o.checkpoint = work / "G.h5";
  o.inputs = synthetic > 0 ? work / "world" / "shards" : work / "in";
  o.schedule.steps = steps;
  o.schedule.w_avg_samples = 2000;
  o.crop_resolution = crop;
  o.device = device;
  o.lpips_vgg = lpips_vgg;
  if (synthetic > 0) {
    o.model = train::load_world_model(work / "world");
    o.model_name = "synthetic world";
    o.landmarks = train::annotation_landmark_provider(o.model);
  } else {
    auto model = train::load_model_choice("canonical", 0, 40, assets);
    o.model = model.model;
    o.model_name = model.name;
    o.landmarks = train::dlib_landmark_provider(assets / "dlib" / "shape_predictor_68_face_landmarks.dat");
  }
  int64_t params = 0;
  for (const auto& t : G.parameters()) params += t.numel();
  std::printf("bench_reconstruct: %d %s, %d steps, crop %d^2, texture G %d^2 (channels %d..%d, w_dim %d, %.1f M "
              "parameters, FP16 on the top %d resolutions), LPIPS %s, device %s, torch threads %d\n",
              images, synthetic > 0 ? fmt::format("synthetic {}^2 renders", synthetic).c_str() : "photos", steps, crop,
              texture, c.synthesis.channels(texture), c.synthesis.channels(4), w_dim, params / 1e6, fp16_res,
              lpips_vgg.empty() ? "off" : lpips_vgg.c_str(), device.c_str(), at::get_num_threads());
  // Rows: the public approach (batch 1, the public projector's per-photo and per-step work), batch 1 (grouped = an
  // ordinary convolution per image, as the public projector), batch B with the default (split) modulated
  // convolutions, batch B with grouped ones (the reference's eval-mode rule applied to a batch) — the last shows what
  // the choice of path is worth.
  struct Row {
    std::string name;
    int batch;
    train::ModconvPath modconv;
    bool public_baseline;
    double rate = 0, proj_rate = 0;
  };
  Row rows[4] = {{"public approach", 1, train::ModconvPath::kAuto, true},
                 {"batch 1", 1, train::ModconvPath::kAuto, false},
                 {fmt::format("batch {} split", batch), batch, train::ModconvPath::kSplit, false},
                 {fmt::format("batch {} grouped", batch), batch, train::ModconvPath::kGrouped, false}};
  for (Row& row : rows) {
    o.batch = row.batch;
    o.modconv = row.modconv;
    o.public_baseline = row.public_baseline;
    o.out = work / fmt::format("out_{}", &row - rows);
    const auto r = train::reconstruct(o);
    row.rate = r.ok / r.seconds * 3600;
    row.proj_rate = r.ok / r.projection_seconds * 3600;
    std::printf("  %-16s: %lld ok, %lld no face, %lld errors; job %.1f s -> %.0f images/hour; projection "
                "%.1f s -> %.0f images/hour (prepare %.1f s, outputs %.1f s)\n",
                row.name.c_str(), static_cast<long long>(r.ok), static_cast<long long>(r.no_face),
                static_cast<long long>(r.error), r.seconds, row.rate, r.projection_seconds, row.proj_rate,
                r.prepare_seconds, r.output_seconds);
  }
  // Ratios to the public approach (the measure) and of the batch-B rows to batch 1 (what batching alone is
  // worth).
  auto ratio = [&](const Row& row, const Row& base) {
    std::printf("  %s / %s: %.2fx images/hour (job), %.2fx (projection)\n", row.name.c_str(), base.name.c_str(),
                row.rate / base.rate, row.proj_rate / base.proj_rate);
  };
  for (int i = 1; i < 4; ++i) ratio(rows[i], rows[0]);
  for (int i = 2; i < 4; ++i) ratio(rows[i], rows[1]);
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
