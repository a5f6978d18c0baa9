// `facetex generate` (train/generate.h, apps/cmd_generate.cpp) on CPU at small scale: random-weight networks written
// from C++ in their production layouts (texture G and 2D G at 32^2 with z_dim = w_dim = 512, DFR for the 2D G's
// num_ws, a synthetic BFM-layout face model saved as MAT + UV npy), run through the real binary. Checks the outputs
// (OBJ counts match the model, R x R textures, the npy layout), batch-independence (batch 1 == batch 3, byte for
// byte), --part, rerun skipping, exit codes 2 (bad seeds) and 3 (missing file, named); plus seed parsing and the
// NumPy-compatible z.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image_codec.h"
#include "models/aux/dfr_model.h"
#include "models/face3d/morphable_model.h"
#include "models/stylegan2/factory.h"
#include "models/stylegan2/generator.h"
#include "models/stylegan2/network_config.h"
#include "models/weights/weight_file.h"
#include "tests/support/fixtures.h"
#include "train/generate.h"
#include "train/job_settings.h"

namespace fs = std::filesystem;
using namespace facetex;
namespace sg = facetex::models::stylegan2;
namespace f3 = facetex::models::face3d;

namespace {

test::CommandResult run_facetex(const std::string& args) {
  return test::run_command(FACETEX_BINARY_PATH " " + args);
}

sg::GeneratorConfig generator_config(int resolution) {
  sg::GeneratorConfig c;
  c.z_dim = c.mapping.z_dim = 512;
  c.w_dim = c.mapping.w_dim = c.synthesis.w_dim = 512;
  c.img_resolution = c.synthesis.img_resolution = resolution;
  c.mapping.num_layers = 2;
  c.synthesis.channel_base = 256;
  c.synthesis.channel_max = 16;
  return c;
}

struct Files {
  fs::path tex_G, bg_G, dfr, mat, uv;
  int64_t vertices = 0, triangles = 0;
};

const Files& files() {
  static test::TempDir dir;
  static Files f;
  if (!f.tex_G.empty()) return f;
  f = {dir / "texture.h5", dir / "ffhq.h5", dir / "dfr.h5", dir / "model.mat", dir / "uv.npy"};
  const sg::GeneratorConfig gc = generator_config(32);
  at::manual_seed(21);
  sg::Generator tex(gc);
  tex.mapping->w_avg.normal_(0, 0.1);  // truncation has something to pull towards
  models::write_weight_file(f.tex_G, {{"G_ema", models::network_state(tex, "Generator", sg::to_init_kwargs(gc))}},
                            "random test weights", "test");
  at::manual_seed(22);
  sg::Generator bg(gc);
  models::write_weight_file(f.bg_G, {{"G_ema", models::network_state(bg, "Generator", sg::to_init_kwargs(gc))}},
                            "random test weights", "test");
  models::aux::DFRModel dfr(bg.num_ws());
  {
    at::NoGradGuard no_grad;
    at::manual_seed(23);
    for (auto& p : dfr.parameters(true)) {
      if (p.dim() >= 2) p.normal_(0, 0.5 / std::sqrt(static_cast<double>(p.size(1))));
      else p.zero_();
    }
  }
  models::write_weight_file(f.dfr, {{"dfr", models::network_state(dfr, "DFRModel", "{}")}}, "random test weights",
                            "test");
  f3::SyntheticModelOptions mo;
  mo.grid = 12;
  const f3::MorphableModel model = f3::make_synthetic_model(mo);
  f3::save_morphable_model(model, f.mat, f.uv);
  f.vertices = model.num_vertices();
  f.triangles = model.num_triangles();
  return f;
}

std::string textured_args(const fs::path& out, const std::string& seeds, int batch, const std::string& extra = "") {
  const Files& f = files();
  return fmt::format("generate textured --checkpoint {} --background-generator {} --dfr {} --face-model {}:{} "
                     "--seeds {} --out {} --batch {} {}",
                     f.tex_G.string(), f.bg_G.string(), f.dfr.string(), f.mat.string(), f.uv.string(), seeds,
                     out.string(), batch, extra);
}

int count_prefix(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) ++n;
  return n;
}

}  // namespace

TEST(GenerateSeeds, ParsesRangesAndLists) {
  EXPECT_EQ(train::parse_seeds("0-3"), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(train::parse_seeds("1,5,9"), (std::vector<uint32_t>{1, 5, 9}));
  EXPECT_EQ(train::parse_seeds("7,0-2,1"), (std::vector<uint32_t>{7, 0, 1, 2}));
  EXPECT_EQ(train::parse_seeds("4294967295"), (std::vector<uint32_t>{4294967295u}));
  // Repeats are dropped, first occurrence kept, across overlapping and adjacent ranges.
  EXPECT_EQ(train::parse_seeds("5-8,3-6,9,2-10,0"), (std::vector<uint32_t>{5, 6, 7, 8, 3, 4, 9, 2, 10, 0}));
  EXPECT_EQ(train::parse_seeds("10-12,0-20").size(), 21u);
  EXPECT_EQ(train::parse_seeds("0-9999999").size(), 10000000u);
  EXPECT_THROW(train::parse_seeds("0-10000000"), UsageError);  // more than 10 million: split the job
  // Random lists against the obvious first-occurrence deduplication.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    std::vector<uint32_t> expected;
    std::set<uint32_t> seen;
    for (int piece = 0, n = 1 + static_cast<int>(rng() % 6); piece < n; ++piece) {
      const uint32_t lo = rng() % 40, hi = lo + rng() % 8;
      text += fmt::format("{}{}-{}", text.empty() ? "" : ",", lo, hi);
      for (uint32_t v = lo; v <= hi; ++v)
        if (seen.insert(v).second) expected.push_back(v);
    }
    EXPECT_EQ(train::parse_seeds(text), expected) << text;
  }
  for (const char* bad : {"", "a", "1-", "-3", "5-2", "1,,2", "4294967296", "1.5"})
    EXPECT_THROW(train::parse_seeds(bad), UsageError) << bad;
}

TEST(GenerateSeeds, NumpyCompatibleNormals) {
  // np.random.RandomState(0).randn(5) and RandomState(1).randn(3)
  const std::vector<double> z0 = train::numpy_randn(0, 5);
  const double want0[] = {1.764052345967664, 0.4001572083672233, 0.9787379841057392, 2.240893199201458,
                          1.8675579901499675};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(z0[i], want0[i], 1e-9) << i;
  const std::vector<double> z1 = train::numpy_randn(1, 3);
  const double want1[] = {1.6243453636632417, -0.6117564136500754, -0.5281717522634557};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(z1[i], want1[i], 1e-9) << i;
}

// Two jobs with other settings starting together into one folder: exactly one claims it, the other is refused (the
// check and the write were two steps; both could pass, and one job's seeds were then skipped as finished).
TEST(GenerateSettings, ConcurrentClaimsWithOtherSettingsOneWins) {
  test::TempDir dir;
  for (int trial = 0; trial < 20; ++trial) {
    const fs::path record = dir / fmt::format("generate-{}.json", trial);
    std::atomic<int> refused{0};
    std::vector<std::thread> jobs;
    for (int j = 0; j < 4; ++j) {
      jobs.emplace_back([&, j] {
        try {
          train::claim_output_settings(record, "facetex-generate", nlohmann::json{{"trunc", j}}, "remedy");
        } catch (const UsageError&) {
          ++refused;
        }
      });
    }
    for (auto& t : jobs) t.join();
    EXPECT_EQ(refused.load(), 3) << "trial " << trial;
  }
}

TEST(GenerateTextured, WritesMeshesTexturesAndRendersIndependentOfParts) {
  const Files& f = files();
  test::TempDir dir;
  const fs::path a = dir / "a", b = dir / "b";
  auto r = run_facetex(textured_args(a, "0-2", 3, "--trunc 0.7"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("generated 3, skipped 0"), std::string::npos) << r.out;
  // The same seeds in two parts: short batches, padded to --batch 3, so every seed's files are the same bytes.
  for (const char* part : {"0/2", "1/2"}) {
    r = run_facetex(textured_args(b, "0-2", 3, std::string("--trunc 0.7 --part ") + part));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  for (int seed = 0; seed < 3; ++seed) {
    const std::string stem = fmt::format("seed{:04d}", seed);
    const std::string obj = read_file(a / (stem + ".obj"));
    EXPECT_EQ(count_prefix(obj, "v "), f.vertices) << stem;
    EXPECT_EQ(count_prefix(obj, "vt "), f.vertices) << stem;
    EXPECT_EQ(count_prefix(obj, "f "), f.triangles) << stem;
    EXPECT_NE(obj.find(stem + ".mtl"), std::string::npos);
    EXPECT_NE(read_file(a / (stem + ".mtl")).find(stem + ".png"), std::string::npos);
    const data::Image tex = data::decode_image(read_file(a / (stem + ".png")), stem);
    EXPECT_EQ(tex.width, 32);
    EXPECT_EQ(tex.height, 32);
    const data::Image front = data::decode_image(read_file(a / (stem + "_front.png")), stem);
    EXPECT_EQ(front.width, 32);
    // The face covers a good part of the image, and the white background the rest.
    int64_t face = 0;
    for (size_t p = 0; p < front.rgb.size(); p += 3)
      face += front.rgb[p] != 255 || front.rgb[p + 1] != 255 || front.rgb[p + 2] != 255;
    const double share = static_cast<double>(face) / (32.0 * 32.0);
    EXPECT_GT(share, 0.1) << stem;
    EXPECT_LT(share, 0.95) << stem;
    for (const char* suffix : {".obj", ".mtl", ".png", "_front.png"})
      EXPECT_EQ(read_file(a / (stem + suffix)), read_file(b / (stem + suffix))) << stem << suffix << ": whole vs parts";
  }
  // Different seeds, different faces.
  EXPECT_NE(read_file(a / "seed0000.obj"), read_file(a / "seed0001.obj"));
  EXPECT_NE(read_file(a / "seed0000.png"), read_file(a / "seed0001.png"));

  // Rerun: everything is skipped and nothing is rewritten.
  const auto mtime = fs::last_write_time(a / "seed0001.obj");
  r = run_facetex(textured_args(a, "0-2", 2, "--trunc 0.7"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("generated 0, skipped 3"), std::string::npos) << r.out;
  EXPECT_EQ(fs::last_write_time(a / "seed0001.obj"), mtime);
  // A missing piece makes its seed run again.
  fs::remove(a / "seed0002_front.png");
  r = run_facetex(textured_args(a, "0-2", 2, "--trunc 0.7"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("generated 1, skipped 2"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(a / "seed0002_front.png"), read_file(b / "seed0002_front.png"));
  // Other settings into the same folder would take its seeds as finished: refused, naming the difference.
  const auto before = fs::last_write_time(a / "seed0001.obj");
  r = run_facetex(textured_args(a, "0-3", 2, "--trunc 0.5"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("generate.json: the outputs in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncation_psi: 0.7 then, 0.5 now"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(a / "seed0003.obj"));
  r = run_facetex(fmt::format("generate pairs --generator {} --seeds 0 --out {}", f.bg_G.string(), a.string()));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("kind: \"textured\" then, \"pairs\" now"), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(a / "seed0001.obj"), before);
}

TEST(GenerateTextured, PartsSliceTheSeeds) {
  test::TempDir dir;
  auto r = run_facetex(textured_args(dir / "p", "10,11,12,13", 4, "--part 1/2 --noise-mode random"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(dir / "p" / "seed0010.obj"));
  EXPECT_FALSE(fs::exists(dir / "p" / "seed0011.obj"));
  EXPECT_TRUE(fs::exists(dir / "p" / "seed0012.obj"));
  EXPECT_TRUE(fs::exists(dir / "p" / "seed0013_front.png"));
  // Random noise is seeded per seed: batch 1 gives the same texture.
  r = run_facetex(textured_args(dir / "q", "13", 1, "--noise-mode random"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(read_file(dir / "p" / "seed0013.png"), read_file(dir / "q" / "seed0013.png"));
  // --render-resolution sizes the front render only; the texture stays the G's.
  r = run_facetex(textured_args(dir / "r", "13", 1, "--noise-mode random --render-resolution 48"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(data::decode_image(read_file(dir / "r" / "seed0013_front.png"), "front").width, 48);
  EXPECT_EQ(read_file(dir / "r" / "seed0013.png"), read_file(dir / "q" / "seed0013.png"));
  r = run_facetex(textured_args(dir / "s", "13", 1, "--render-resolution 8"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--render-resolution must be 0"), std::string::npos) << r.err;
}

TEST(GenerateTextured, ExitCodes) {
  const Files& f = files();
  test::TempDir dir;
  auto r = run_facetex(textured_args(dir / "x", "0-x", 1));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("0-x"), std::string::npos) << r.err;
  r = run_facetex(textured_args(dir / "x", "3-1", 1));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run_facetex(textured_args(dir / "x", "0", 1, "--trunc nan"));  // would write all-NaN outputs
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--trunc must be a finite number"), std::string::npos) << r.err;
  test::write_bytes(dir / "file", "x");
  r = run_facetex(textured_args(dir / "file", "0", 1));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not a folder"), std::string::npos) << r.err;
  r = run_facetex(fmt::format("generate textured --checkpoint {} --background-generator {} --dfr {} --face-model "
                              "{}:{} --seeds 0 --out {}",
                              f.tex_G.string(), f.bg_G.string(), (dir / "no_dfr.h5").string(), f.mat.string(),
                              f.uv.string(), (dir / "x").string()));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no_dfr.h5"), std::string::npos) << r.err;
  r = run_facetex(fmt::format("generate pairs --generator {} --seeds 0 --out {}", (dir / "nope.h5").string(),
                              (dir / "x").string()));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("nope.h5"), std::string::npos) << r.err;
  r = run_facetex("generate --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("textured"), std::string::npos);
  EXPECT_NE(r.out.find("pairs"), std::string::npos);
}

TEST(GeneratePairs, ImagesAndWsIndependentOfBatch) {
  const Files& f = files();
  test::TempDir dir;
  const auto args = [&](const fs::path& out, int batch) {
    return fmt::format("generate pairs --generator {} --seeds 0-2 --out {} --batch {}", f.bg_G.string(),
                       out.string(), batch);
  };
  auto r = run_facetex(args(dir / "a", 3));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(args(dir / "b", 1));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const int num_ws = sg::Generator(generator_config(32)).num_ws();
  for (int seed = 0; seed < 3; ++seed) {
    const std::string stem = fmt::format("seed{:04d}", seed);
    const data::Image img = data::decode_image(read_file(dir / "a" / (stem + ".png")), stem);
    EXPECT_EQ(img.width, 32);
    EXPECT_EQ(img.height, 32);
    const std::string ws = read_file(dir / "a" / (stem + ".npz"));
    EXPECT_NE(ws.find("ws.npy"), std::string::npos);
    EXPECT_NE(ws.find(fmt::format("'shape': (1, {}, 512)", num_ws)), std::string::npos);
    if (seed == 0 && test::run_command("/usr/bin/python3 -c 'import numpy'").exit_code == 0) {  // as generate.py's
      const auto py = test::run_command(fmt::format(
          "/usr/bin/python3 -c \"import numpy as np; ws = np.load('{}')['ws']; print(ws.dtype, ws.shape)\"",
          (dir / "a" / (stem + ".npz")).string()));
      EXPECT_EQ(py.out, fmt::format("float32 (1, {}, 512)\n", num_ws)) << py.err;
    }
    for (const char* suffix : {".png", ".npz"})
      EXPECT_EQ(read_file(dir / "a" / (stem + suffix)), read_file(dir / "b" / (stem + suffix))) << stem << suffix;
  }
  r = run_facetex(args(dir / "a", 2));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("generated 0, skipped 3"), std::string::npos) << r.out;
}

// generate.py synthesises with G, not G_ema: the default group is G (G_ema only for a file without G); another group
// must exist, and the message lists what the file holds.
TEST(GeneratePairs, UsesGLikeGenerateScript) {
  const Files& f = files();
  test::TempDir dir;
  const sg::GeneratorConfig gc = generator_config(32);
  at::manual_seed(22);
  sg::Generator g(gc);  // the same weights as f.bg_G's G_ema
  at::manual_seed(21);
  sg::Generator ema(gc);
  const fs::path both = dir / "both.h5";
  models::write_weight_file(both,
                            {{"G", models::network_state(g, "Generator", sg::to_init_kwargs(gc))},
                             {"G_ema", models::network_state(ema, "Generator", sg::to_init_kwargs(gc))}},
                            "random test weights", "test");
  const auto pairs = [&](const fs::path& file, const std::string& out, const std::string& extra) {
    return run_facetex(fmt::format("generate pairs --generator {} --seeds 3 --out {} {}", file.string(),
                                   (dir / out).string(), extra));
  };
  ASSERT_EQ(pairs(both, "default", "").exit_code, 0);
  ASSERT_EQ(pairs(both, "ema", "--network G_ema").exit_code, 0);
  ASSERT_EQ(pairs(f.bg_G, "fallback", "").exit_code, 0);  // only G_ema there: used instead
  EXPECT_EQ(read_file(dir / "default" / "seed0003.png"), read_file(dir / "fallback" / "seed0003.png"));
  EXPECT_NE(read_file(dir / "default" / "seed0003.png"), read_file(dir / "ema" / "seed0003.png"));
  const auto r = pairs(f.bg_G, "d", "--network D");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no network group 'D' (the file holds: G_ema)"), std::string::npos) << r.err;
}

TEST(GeneratePairs, StopsAfterTheCurrentBatchAndResumes) {
  const Files& f = files();
  test::TempDir dir;
  train::PairsOptions o;
  o.generator = f.bg_G;
  o.common.seeds = {5, 6, 7, 8, 9};
  o.common.out = dir / "s";
  o.common.batch = 2;
  o.common.noise = sg::NoiseMode::kNone;
  int calls = 0;
  o.common.stop = [&calls] { return ++calls > 1; };  // as if SIGTERM arrived during the first batch
  train::GenerateResult r = train::generate_pairs(o);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.written, 2);
  EXPECT_TRUE(fs::exists(dir / "s" / "seed0006.npz"));
  EXPECT_FALSE(fs::exists(dir / "s" / "seed0007.png"));
  o.common.stop = nullptr;
  r = train::generate_pairs(o);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.written, 3);
  EXPECT_EQ(r.skipped, 2);
  // No temporary leftovers.
  for (const auto& e : fs::directory_iterator(dir / "s"))
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
}
