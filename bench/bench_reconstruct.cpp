// Reconstructed images per hour: `facetex reconstruct`'s library path (train/reconstruct.h) on the same photos with
// the same steps at batch 1 (the public code's one-image-at-a-time approach) and at batch B, side by side.
//
//   bench_reconstruct [--device cpu|cuda] [--batch 8] [--steps 20] [--crop 256] [--texture 64] [--channels 64]
//                     [--w-dim 128] [--images 8] [--keep DIR]
//
// Input photos: the dlib example photos with faces (assets/dlib/faces; $FACETEX_ASSETS or <source>/assets), cycled
// to --images. The texture generator has random weights (the cost does not depend on the values). The face model is
// the canonical mesh. Timings: whole job (geometry, projection, writing) and projection alone.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/version.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "train/annotate.h"
#include "train/reconstruct.h"

namespace fs = std::filesystem;
using namespace facetex;

int main(int argc, char** argv) {
  std::string device = "cpu";
  int batch = 8, steps = 20, crop = 256, texture = 64, channels = 64, w_dim = 128, images = 8;
  std::string keep;
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
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  const char* env = std::getenv("FACETEX_ASSETS");
  const fs::path assets = env && *env ? fs::path(env) : fs::path(FACETEX_SOURCE_DIR) / "assets";
  const fs::path faces = assets / "dlib" / "faces";
  if (!fs::is_directory(faces)) {
    std::fprintf(stderr, "%s missing: run scripts/fetch_assets.sh\n", faces.string().c_str());
    return 77;
  }
  const fs::path work = keep.empty() ? fs::temp_directory_path() / fmt::format("bench_reconstruct_{}", ::getpid())
                                     : fs::path(keep);
  fs::remove_all(work);
  fs::create_directories(work / "in");
  const std::vector<std::string> photos = {"2008_002079.jpg", "2008_001322.jpg", "2007_007763.jpg",
                                           "2009_004587.jpg", "2008_002470.jpg", "2008_004176.jpg",
                                           "2008_007676.jpg", "2008_002506.jpg"};
  for (int i = 0; i < images; ++i) {
    fs::copy_file(faces / photos[size_t(i) % photos.size()], work / "in" / fmt::format("img{:03d}.jpg", i));
  }
  namespace sg = models::stylegan2;
  sg::GeneratorConfig c;
  c.z_dim = c.mapping.z_dim = w_dim;
  c.w_dim = c.mapping.w_dim = c.synthesis.w_dim = w_dim;
  c.img_resolution = c.synthesis.img_resolution = texture;
  c.synthesis.channel_base = channels * texture;
  c.synthesis.channel_max = channels;
  at::manual_seed(1);
  sg::Generator G(c);
  models::write_weight_file(work / "G.h5", {{"G_ema", models::network_state(G, "Generator", sg::to_init_kwargs(c))}},
                            "random bench weights", "bench_reconstruct");

  train::ReconstructOptions o;
  o.checkpoint = work / "G.h5";
  o.inputs = work / "in";
  o.schedule.steps = steps;
  o.schedule.w_avg_samples = 2000;
  o.crop_resolution = crop;
  o.device = device;
  auto model = train::load_model_choice("canonical", 0, 40, assets);
  o.model = model.model;
  o.model_name = model.name;
  o.landmarks = train::dlib_landmark_provider(assets / "dlib" / "shape_predictor_68_face_landmarks.dat");
  std::printf("bench_reconstruct: %d photos, %d steps, crop %d^2, texture G %d^2 (%d channels, w_dim %d, %d params "
              "tensors), device %s, torch threads %d\n",
              images, steps, crop, texture, channels, w_dim, int(G.parameters().size()), device.c_str(),
              at::get_num_threads());
  double rate[2] = {0, 0}, proj_rate[2] = {0, 0};
  const int batches[2] = {1, batch};
  for (int k = 0; k < 2; ++k) {
    o.batch = batches[k];
    o.out = work / fmt::format("out_b{}", o.batch);
    const auto r = train::reconstruct(o);
    rate[k] = r.ok / r.seconds * 3600;
    proj_rate[k] = r.ok / r.projection_seconds * 3600;
    std::printf("  batch %2d: %lld ok, %lld no face, %lld errors; job %.1f s -> %.0f images/hour; projection %.1f s "
                "-> %.0f images/hour\n",
                o.batch, static_cast<long long>(r.ok), static_cast<long long>(r.no_face),
                static_cast<long long>(r.error), r.seconds, rate[k], r.projection_seconds, proj_rate[k]);
  }
  std::printf("  batch %d / batch 1: %.2fx images/hour (job), %.2fx (projection)\n", batch, rate[1] / rate[0],
              proj_rate[1] / proj_rate[0]);
  if (keep.empty()) fs::remove_all(work);
  return 0;
}
