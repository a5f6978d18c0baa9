// model.background = generated (train/generated_background.h) on CPU at small scale: random-weight networks written
// from C++ in their production layouts (2D generator 64^2 / num_ws 10 with w_dim 512, DFR and RigNet for 10 ws,
// ReconNet's ResNet-50, MTCNN's three nets) and read back through the real loaders. Checks shapes, the no-face
// fallback (MTCNN with near-zero weights finds nothing: composite == background), the literal pose edit (one yaw
// draw per batch), the 20% mirror, gradient flow (only the texture G), the face path with the deterministic
// landmark provider, and two training iterations of `facetex train` in generated mode.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "core/config.h"
#include "core/error.h"
#include "models/aux/mtcnn_nets.h"
#include "models/face3d/morphable_model.h"
#include "models/face3d/pos_align.h"
#include "models/stylegan2/network_config.h"
#include "models/weights/weight_file.h"
#include "tests/support/fixtures.h"
#include "train/generated_background.h"
#include "train/synthetic_world.h"
#include "train/train_options.h"
#include "train/training_loop.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::train;
namespace sg = facetex::models::stylegan2;
namespace aux = facetex::models::aux;

namespace {

sg::GeneratorConfig generator_config(int resolution, int z_dim, int w_dim) {
  sg::GeneratorConfig c;
  c.z_dim = c.mapping.z_dim = z_dim;
  c.w_dim = c.mapping.w_dim = c.synthesis.w_dim = w_dim;
  c.img_resolution = c.synthesis.img_resolution = resolution;
  c.mapping.num_layers = 2;
  c.synthesis.channel_base = 256;
  c.synthesis.channel_max = 16;
  return c;
}

// Seeded random weights: N(0, scale^2 / fan_in) for weights, zero biases, BatchNorm at identity statistics.
void randomize(torch::nn::Module& m, uint64_t seed, double scale) {
  at::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (auto& item : m.named_parameters(true)) {
    at::Tensor t = item.value();
    const std::string& n = item.key();
    const bool bn = n.find("bn") != std::string::npos || n.find("downsample.1") != std::string::npos;
    if (t.dim() >= 2) {
      t.normal_(0, scale / std::sqrt(static_cast<double>(t.numel() / t.size(0))));
    } else if (bn && n.size() >= 6 && n.compare(n.size() - 6, 6, "weight") == 0) {
      t.fill_(1);
    } else if (n.find("prelu") != std::string::npos) {
      t.fill_(0.25);
    } else {
      t.zero_();
    }
  }
  for (auto& item : m.named_buffers(true)) {
    const std::string& n = item.key();
    if (n.find("running_var") != std::string::npos) item.value().fill_(1);
    if (n.find("running_mean") != std::string::npos) item.value().zero_();
  }
}

void write_net(const fs::path& file, const std::string& group, const torch::nn::Module& m, const std::string& cls,
               const std::string& kwargs = "{}") {
  models::write_weight_file(file, {{group, models::network_state(m, cls, kwargs)}}, "random test weights", "test");
}

// The frozen networks' files for a 2D generator of `resolution` (num_ws from it), written once per resolution.
struct NetFiles {
  fs::path background_generator, dfr, rignet, recon_net, mtcnn_dir;
};

const NetFiles& net_files(int resolution) {
  static test::TempDir dir;
  static std::map<int, NetFiles> made;
  auto it = made.find(resolution);
  if (it != made.end()) return it->second;
  const fs::path d = dir / fmt::format("nets{}", resolution);
  fs::create_directories(d / "mtcnn");
  NetFiles f{d / "ffhq.h5", d / "dfr.h5", d / "rignet.h5", d / "net_recon.h5", d / "mtcnn"};
  const sg::GeneratorConfig gc = generator_config(resolution, 512, 512);
  at::manual_seed(11);
  sg::Generator G(gc);
  write_net(f.background_generator, "G_ema", G, "Generator", sg::to_init_kwargs(gc));
  aux::DFRModel dfr(G.num_ws());
  randomize(dfr, 12, 1.0);
  write_net(f.dfr, "dfr", dfr, "DFRModel");
  aux::RigNet rig(G.num_ws());
  randomize(rig, 13, 0.1);
  write_net(f.rignet, "rignet", rig, "RigNet");
  aux::ReconNet recon;
  randomize(recon, 14, 1.0);
  write_net(f.recon_net, "net_recon", recon, "ReconNet");
  // Near-zero weights: P(face) ~ 0.5 < 0.6 everywhere, so the cascade finds nothing.
  aux::PNet pnet;
  aux::RNet rnet;
  aux::ONet onet;
  randomize(pnet, 15, 0.01);
  randomize(rnet, 16, 0.01);
  randomize(onet, 17, 0.01);
  write_net(f.mtcnn_dir / "pnet.h5", "pnet", pnet, "PNet");
  write_net(f.mtcnn_dir / "rnet.h5", "rnet", rnet, "RNet");
  write_net(f.mtcnn_dir / "onet.h5", "onet", onet, "ONet");
  return made.emplace(resolution, f).first->second;
}

std::shared_ptr<const FaceRenderer> face_renderer(int id_dims = 80) {
  models::face3d::SyntheticModelOptions mo;
  mo.grid = 16;
  mo.id_dims = id_dims;
  return std::make_shared<FaceRenderer>(models::face3d::make_synthetic_model(mo));
}

TrainOptions options_for(const NetFiles& f) {
  TrainOptions o;
  o.background = "generated";
  o.background_generator = f.background_generator.string();
  o.dfr = f.dfr.string();
  o.rignet = f.rignet.string();
  o.recon_net = f.recon_net.string();
  o.mtcnn_dir = f.mtcnn_dir.string();
  return o;
}

// The loaded networks with the deterministic landmark provider and a ReconNet whose last layers are zero (all
// coefficients 0: the mean face, frontal, at the crop's centre).
GeneratedBackgroundNets fixed_landmark_nets(const FaceRenderer& renderer) {
  static GeneratedBackgroundNets cached;  // the same synthetic model every time; loaded once
  if (cached.trained_G) return cached;
  auto p = load_generated_background_pipeline(options_for(net_files(64)), face_renderer(), at::kCPU);
  GeneratedBackgroundNets nets = p->nets();
  {
    at::NoGradGuard no_grad;
    for (auto& item : nets.recon->named_parameters(true)) {
      if (item.key().rfind("final_layers", 0) == 0) item.value().zero_();
    }
  }
  nets.detector = std::make_shared<FixedLandmarkProvider>(models::face3d::model_reference_lm3d(renderer.model()),
                                                          0.25);
  cached = nets;
  return nets;
}

std::shared_ptr<sg::Generator> texture_G() {
  at::manual_seed(21);
  auto G = std::make_shared<sg::Generator>(generator_config(64, 512, 32));
  G->train();
  return G;
}

}  // namespace

TEST(GeneratedBackground, NoFaceFallbackEndToEnd) {
  auto renderer = face_renderer();
  auto pipeline = load_generated_background_pipeline(options_for(net_files(64)), renderer, at::kCPU);
  auto G = texture_G();
  EXPECT_EQ(G->num_ws(), 10);
  EXPECT_EQ(pipeline->nets().trained_G->num_ws(), 10);
  const at::Tensor w_avg_before = pipeline->nets().trained_G->mapping->w_avg.clone();
  at::manual_seed(1);
  const at::Tensor z = at::randn({3, 512});
  GeneratorOutput out = pipeline->run(*G, z, {}, 0.9, sg::NoiseMode::kRandom);
  const GeneratedBatch& b = pipeline->last_batch();
  EXPECT_EQ(out.image.sizes(), (std::vector<int64_t>{3, 3, 64, 64}));
  EXPECT_EQ(out.texture.sizes(), (std::vector<int64_t>{3, 3, 64, 64}));
  EXPECT_EQ(out.ws.sizes(), (std::vector<int64_t>{3, 10, 32}));
  EXPECT_EQ(b.coeffs.sizes(), (std::vector<int64_t>{3, 257}));
  EXPECT_EQ(b.crop.sizes(), (std::vector<int64_t>{3, 3, 224, 224}));
  EXPECT_TRUE(at::isfinite(b.backgrounds).all().item<bool>());
  EXPECT_LT(b.backgrounds.abs().max().item<double>(), 50.0);  // a random StyleGAN2: nominally [-1, 1], unclamped
  // The frozen mapping runs in eval mode: no w_avg update.
  EXPECT_TRUE(at::equal(pipeline->nets().trained_G->mapping->w_avg, w_avg_before));
  // Nothing found: zero crops, off-screen boxes, composite == background exactly, coeffs of the zero crop.
  EXPECT_FALSE(b.found.any().item<bool>());
  EXPECT_EQ(b.crop.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(at::equal(b.bbox, at::tensor({2000.0f, 2000.0f, 1.0f}).expand({3, 3})));
  EXPECT_TRUE(at::equal(out.image, b.backgrounds));
  const at::Tensor zero_coeffs = pipeline->nets().recon->forward(at::zeros({1, 3, 224, 224}));
  EXPECT_TRUE(at::allclose(b.coeffs, zero_coeffs.expand({3, 257}), 1e-4, 1e-4));
}

TEST(GeneratedBackground, SharedLatentsAndStyleMixing) {
  auto renderer = face_renderer();
  GeneratedBackgroundNets nets = fixed_landmark_nets(*renderer);
  GeneratedBackgroundPipeline pipeline(renderer, nets);
  auto G = texture_G();
  at::manual_seed(4);
  const at::Tensor z = at::randn({2, 512});
  at::manual_seed(8);
  GeneratorOutput out = pipeline.run(*G, z, {}, 1.0, sg::NoiseMode::kConst);
  // The draws of mix_styles, once, for both generators: cutoff, the mixing decision, mixing_z.
  at::manual_seed(8);
  const int64_t c = at::empty({}, at::kLong).random_(1, 10).item<int64_t>();
  (void)at::rand({});
  const at::Tensor mz = at::randn_like(z);
  at::NoGradGuard no_grad;
  const auto mixed = [&](sg::MappingNetwork& m) {
    return at::cat({m.forward(z, {}, true).narrow(1, 0, c), m.forward(mz, {}, true).narrow(1, c, 10 - c)}, 1);
  };
  EXPECT_TRUE(at::allclose(out.ws, mixed(*G->mapping), 1e-5, 1e-5)) << "cutoff " << c;
  const at::Tensor ws_trained = mixed(*nets.trained_G->mapping);
  EXPECT_TRUE(at::allclose(pipeline.last_batch().ws_trained, ws_trained, 1e-5, 1e-5)) << "cutoff " << c;
  EXPECT_TRUE(at::allclose(pipeline.last_batch().p, nets.dfr->forward(ws_trained), 1e-4, 1e-4));
}

TEST(GeneratedBackground, PoseEditOneYawDrawPerBatch) {
  const int64_t B = 64;
  at::manual_seed(5);
  const at::Tensor p = at::randn({B, 257});
  at::manual_seed(7);
  const PoseEdit e = edit_pose(p);
  // Literal replication of the reference's draws.
  at::manual_seed(7);
  const at::Tensor sign = (at::rand({B, 1}) < 0.5).to(at::kFloat) * 2 - 1;
  const at::Tensor perm = at::randperm(B);
  const at::Tensor u = 6 * at::rand({1}) - 3;
  EXPECT_TRUE(at::equal(e.yaw_draw, u));
  EXPECT_GE(u.item<double>(), -3.0);
  EXPECT_LE(u.item<double>(), 3.0);
  const at::Tensor borrowed = sign * p.index_select(0, perm).narrow(1, 224, 3);
  EXPECT_TRUE(at::allclose(e.p_edit.select(1, 224), borrowed.select(1, 0)));
  EXPECT_TRUE(at::allclose(e.p_edit.select(1, 226), borrowed.select(1, 2)));
  // One draw for the whole batch: yaw_edit + borrowed yaw is the same constant for every sample.
  EXPECT_TRUE(at::allclose(e.p_edit.select(1, 225) + borrowed.select(1, 1), u.expand({B}), 1e-5, 1e-5));
  // Everything else is DFR's own prediction.
  EXPECT_TRUE(at::equal(e.p_edit.narrow(1, 0, 224), p.narrow(1, 0, 224)));
  EXPECT_TRUE(at::equal(e.p_edit.narrow(1, 227, 30), p.narrow(1, 227, 30)));
  // Both signs occur.
  EXPECT_TRUE((sign > 0).any().item<bool>() && (sign < 0).any().item<bool>());
}

TEST(GeneratedBackground, FlipFractionAndMirroring) {
  at::manual_seed(3);
  const at::Tensor images = at::randn({20000, 1, 1, 4});
  const RandomFlip f = random_flip(images, 0.2);
  const double frac = f.flipped.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(frac, 0.2, 0.015);
  const at::Tensor idx = f.flipped.nonzero().squeeze(1), keep = (~f.flipped).nonzero().squeeze(1);
  EXPECT_TRUE(at::equal(f.images.index_select(0, idx), images.index_select(0, idx).flip({3})));
  EXPECT_TRUE(at::equal(f.images.index_select(0, keep), images.index_select(0, keep)));
  // In the pipeline: the same seed with flip_prob 0 gives the unmirrored backgrounds.
  auto renderer = face_renderer();
  GeneratedBackgroundNets nets = fixed_landmark_nets(*renderer);
  GeneratedBackgroundOptions o0, o1;
  o0.flip_prob = 0.0;
  o1.flip_prob = 0.5;
  GeneratedBackgroundPipeline p0(renderer, nets, o0), p1(renderer, nets, o1);
  at::manual_seed(9);
  const at::Tensor ws = nets.trained_G->mapping->forward(at::randn({4, 512})).detach();
  at::manual_seed(10);
  const GeneratedBatch a = p0.make_backgrounds(ws);
  at::manual_seed(10);
  const GeneratedBatch b = p1.make_backgrounds(ws);
  EXPECT_FALSE(a.flipped.any().item<bool>());
  for (int64_t i = 0; i < 4; ++i) {
    const at::Tensor expect = b.flipped[i].item<bool>() ? a.backgrounds[i].flip({2}) : a.backgrounds[i];
    EXPECT_TRUE(at::allclose(b.backgrounds[i], expect, 1e-5, 1e-5)) << i;
  }
}

TEST(GeneratedBackground, FacePathWithFixedLandmarksAndGradients) {
  auto renderer = face_renderer();
  GeneratedBackgroundNets nets = fixed_landmark_nets(*renderer);
  GeneratedBackgroundPipeline pipeline(renderer, nets);
  auto G = texture_G();
  at::manual_seed(2);
  const at::Tensor z = at::randn({2, 512});
  GeneratorOutput out = pipeline.run(*G, z, {}, 0.9, sg::NoiseMode::kRandom);
  const GeneratedBatch& b = pipeline.last_batch();
  EXPECT_TRUE(b.found.all().item<bool>());
  // POS recovers the provider's scale (0.25 * 64 pixels per model unit).
  EXPECT_TRUE(at::allclose(b.bbox.select(1, 2), at::full({2}, 16.0f), 1e-3, 1e-3)) << b.bbox;
  EXPECT_GT(b.crop.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(b.coeffs.abs().max().item<double>(), 0.0);
  const auto r = renderer->render(out.texture, b.coeffs, b.bbox, 64);
  for (int64_t i = 0; i < 2; ++i) EXPECT_GT(r.mask[i].sum().item<int64_t>(), 20) << i;
  EXPECT_FALSE(at::equal(out.image, b.backgrounds));
  // Gradients reach the texture G only.
  out.image.square().sum().backward();
  double g_grad = 0;
  for (auto& p : G->synthesis->parameters(true)) {
    if (p.grad().defined()) g_grad += p.grad().abs().sum().item<double>();
  }
  EXPECT_GT(g_grad, 0.0);
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{nets.trained_G.get(), nets.dfr.get(),
                                                                        nets.rignet.get(), nets.recon.get()}) {
    for (auto& p : m->parameters(true)) {
      EXPECT_FALSE(p.requires_grad());
      EXPECT_FALSE(p.grad().defined());
    }
  }
}

TEST(GeneratedBackground, LayoutAndMissingFilesAreUsageErrors) {
  auto renderer = face_renderer();
  GeneratedBackgroundNets nets = fixed_landmark_nets(*renderer);
  EXPECT_THROW(GeneratedBackgroundPipeline(face_renderer(40), nets), UsageError);
  TrainOptions o = options_for(net_files(64));
  o.rignet = "/nonexistent/rignet.h5";
  try {
    load_generated_background_pipeline(o, renderer, at::kCPU);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model.rignet"), std::string::npos) << e.what();
  }
  o = options_for(net_files(64));
  o.dfr.clear();
  EXPECT_THROW(load_generated_background_pipeline(o, renderer, at::kCPU), UsageError);
}

TEST(GeneratedBackground, TrainTwoIterations) {
  test::TempDir dir;
  SyntheticWorldOptions wo;
  wo.out = dir / "world";
  wo.count = 8;
  wo.resolution = 32;
  wo.texture_resolution = 32;
  wo.shard_size = 8;
  wo.model_grid = 16;
  write_synthetic_world(wo);
  const NetFiles& f = net_files(32);
  const auto make = [&](const std::string& extra) {
    return Config::parse(fmt::format(R"(
[model]
mode = "texture"
background = "generated"
resolution = 32
texture_resolution = 32
z_dim = 512
w_dim = 16
mapping_layers = 2
channel_base = 128
channel_max = 16
mbstd_group = 2
face_model_mat = "{0}/model.mat"
face_model_uv = "{0}/uv.npy"
background_generator = "{2}"
dfr = "{3}"
rignet = "{4}"
recon_net = "{5}"
mtcnn_dir = "{6}"
{7}
[data]
shards = "{0}/shards"
threads = 1
[train]
batch = 2
G_reg_interval = 2
D_reg_interval = 2
[augment]
mode = "noaug"
[run]
dir = "{1}"
total_kimg = 0.004
kimg_per_tick = 0.004
grid_images = 2
)",
                                     wo.out.string(), (dir / "run").string(), f.background_generator.string(),
                                     f.dfr.string(), f.rignet.string(), f.recon_net.string(), f.mtcnn_dir.string(),
                                     extra));
  };
  const Config c = make("");
  const TrainResult r = run_training(parse_train_options(c), c);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.steps_run, 2);
  EXPECT_EQ(r.cur_nimg, 4);
  // Texture and composite grids (backgrounds from the frozen branch, made once from the grid latents).
  for (const char* grid : {"textures-init.png", "fakes-init.png"}) EXPECT_TRUE(fs::exists(dir / "run" / grid)) << grid;
  // A missing network names its key.
  const Config bad = make("");
  TrainOptions ob = parse_train_options(bad);
  ob.run_dir = (dir / "run2").string();
  ob.recon_net = (dir / "missing.h5").string();
  try {
    run_training(ob, bad);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model.recon_net"), std::string::npos) << e.what();
  }
}
