// `facetex reconstruct` end to end on the real dlib example photos (skipped without assets/) with a tiny random
// texture generator written as a checkpoint-layout weight file (G_ema, 32x32): outputs and manifest, rerun skips,
// the manifest status of no-face / grayscale / truncated / huge / non-image inputs, batch-4 vs one-at-a-time
// agreement for the same seed, and SIGTERM -> exit 75 with intact, skipped items. Plus the projector's pieces and
// the identity term (--id-weight): the differentiable dlib chip against dlib's extract_image_chip, the grad path of
// the dlib ResNet against its no-grad path, the term's gradient, and a run that records the identity distance.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image_codec.h"
#include "models/aux/dlib_face_chip.h"
#include "models/aux/dlib_face_resnet.h"
#include "models/aux/dlib_landmarks.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "tests/support/fixtures.h"
#include "train/reconstruct.h"
#include "train/synthetic_world.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace facetex {
namespace {
namespace sg = models::stylegan2;

test::CommandResult run_facetex(const std::string& args) { return test::run_command(FACETEX_BINARY_PATH " " + args); }

sg::GeneratorConfig test_generator_config() {
  sg::GeneratorConfig c;
  c.z_dim = c.mapping.z_dim = 64;
  c.w_dim = c.mapping.w_dim = c.synthesis.w_dim = 64;
  c.img_resolution = c.synthesis.img_resolution = 32;
  c.mapping.num_layers = 2;
  c.synthesis.channel_base = 256;
  c.synthesis.channel_max = 16;
  return c;
}

const fs::path& checkpoint() {
  static test::TempDir dir;
  static fs::path file;
  if (!file.empty()) return file;
  file = dir / "ckpt.h5";
  const sg::GeneratorConfig c = test_generator_config();
  at::manual_seed(5);
  sg::Generator G(c);
  {
    at::NoGradGuard ng;
    for (auto& p : G.named_parameters()) {
      if (p.key().find("noise_strength") != std::string::npos) p.value().fill_(0.2);  // noise maps matter
    }
  }
  models::write_weight_file(file, {{"G_ema", models::network_state(G, "Generator", sg::to_init_kwargs(c))}},
                            "random test weights", "test");
  return file;
}

fs::path face(const std::string& name) { return test::assets_dir() / "dlib" / "faces" / name; }

std::string common_args(const fs::path& inputs, const fs::path& out, const std::string& extra = "", int steps = 6) {
  return fmt::format("reconstruct --checkpoint {} --inputs {} --out {} --steps {} --w-avg-samples 200 "
                     "--crop-resolution 64 --model canonical --log-level warn {}",
                     checkpoint().string(), inputs.string(), out.string(), steps, extra);
}

std::map<std::string, json> manifest(const fs::path& file) {
  std::map<std::string, json> m;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line);
    m[j["input"].get<std::string>()] = j;
  }
  return m;
}

cv::Mat read_png(const fs::path& p) { return cv::imread(p.string(), cv::IMREAD_UNCHANGED); }

TEST(Reconstruct, ScheduleAndRegularizerFollowTheSpec) {
  train::ProjectorSchedule s;
  EXPECT_DOUBLE_EQ(train::projector_learning_rate(s, 0.0), 0.0);
  EXPECT_NEAR(train::projector_learning_rate(s, 0.025), 0.05, 1e-12);  // half-way up the ramp
  EXPECT_NEAR(train::projector_learning_rate(s, 0.5), 0.1, 1e-12);
  EXPECT_NEAR(train::projector_learning_rate(s, 0.875), 0.1 * (0.5 - 0.5 * std::cos(M_PI * 0.5)), 1e-12);
  EXPECT_NEAR(train::projector_w_noise_scale(s, 2.0, 0.0), 0.1, 1e-12);
  EXPECT_NEAR(train::projector_w_noise_scale(s, 2.0, 0.375), 0.1 * 0.25, 1e-12);
  EXPECT_DOUBLE_EQ(train::projector_w_noise_scale(s, 2.0, 0.9), 0.0);
  // A constant map of ones: every roll product has mean 1 at every scale 32, 16, 8 -> 3 scales x 2 terms.
  EXPECT_NEAR(train::noise_regularizer(at::ones({2, 1, 32, 32}))[1].item<double>(), 6.0, 1e-6);
  // A checkerboard: x and y roll products are -1 at 32 and 16 (pooling averages it away at 8 -> 0).
  const at::Tensor idx = at::arange(32);
  const at::Tensor cb = ((idx.view({32, 1}) + idx.view({1, 32})) % 2 * 2 - 1).to(at::kFloat).view({1, 1, 32, 32});
  EXPECT_NEAR(train::noise_regularizer(cb)[0].item<double>(), 2.0, 1e-6);
}

TEST(Reconstruct, ImageScoresMatchHandComputedValues) {
  const at::Tensor t = at::zeros({3, 8, 8});
  at::Tensor r = t.clone();
  r[0][0][0] = 10;  // data range 10, mse 100 / 192
  EXPECT_NEAR(train::image_psnr(t, r), 10 * std::log10(100.0 / (100.0 / 192)), 1e-9);
  EXPECT_NEAR(train::image_ssim(r, r), 1.0, 1e-12);
  EXPECT_LT(train::image_ssim(t, r), 1.0);
  const std::string png = data::encode_png(test::make_image(40, 30, 1));
  ASSERT_TRUE(train::image_header_size(png));
  EXPECT_EQ(*train::image_header_size(png), std::make_pair(int64_t(40), int64_t(30)));
  const std::string jpg = data::encode_jpeg(test::make_image(50, 20, 1), 90);
  EXPECT_EQ(*train::image_header_size(jpg), std::make_pair(int64_t(50), int64_t(20)));
  EXPECT_FALSE(train::image_header_size("hello"));
}

// Two inputs never share an output folder (the second's outputs would replace the first's, and a re-run would skip
// one of them as finished): sanitising is lossy, so what still collides gets a digest of its path.
TEST(Reconstruct, OutputNamesAreDistinctAndStable) {
  const std::vector<std::string> sources = {
      "a.jpg", "a.png", "sub/a.jpg", "sub2/a b.jpg", "sub2/a_b.jpg", "solo.jpeg", "x/y/z.png",
      "noext", ".jpg", "caf\xc3\xa9.jpg", "caf__.jpg", std::string(300, 'n') + ".jpg", "dir.v2/photo"};
  const std::vector<std::string> names = train::output_names(sources);
  ASSERT_EQ(names.size(), sources.size());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  // Unambiguous inputs keep the readable names earlier runs gave them.
  EXPECT_EQ(names[0], "a.jpg");
  EXPECT_EQ(names[1], "a.png");
  EXPECT_EQ(names[2], "sub_a");
  EXPECT_EQ(names[5], "solo");
  EXPECT_EQ(names[6], "x_y_z");
  EXPECT_EQ(names[7], "noext");
  EXPECT_EQ(names[12], "dir.v2_photo");
  // Collisions after sanitising: both get a path digest, so neither depends on the other's existence.
  EXPECT_EQ(names[3].rfind("sub2_a_b.jpg-", 0), 0u) << names[3];
  EXPECT_EQ(names[4].rfind("sub2_a_b.jpg-", 0), 0u) << names[4];
  EXPECT_EQ(names[9].rfind("caf__.jpg-", 0), 0u) << names[9];
  EXPECT_EQ(names[10].rfind("caf__.jpg-", 0), 0u) << names[10];
  // Long paths fit a file name.
  EXPECT_LE(names[11].size(), 200u);
  for (const auto& n : names) {
    EXPECT_NE(n[0], '.') << n;
    EXPECT_EQ(n.find('/'), std::string::npos) << n;
  }
  // The same list gives the same names (every rank and part computes them alone).
  EXPECT_EQ(train::output_names(sources), names);
}

TEST(Reconstruct, EndToEndOutputsManifestStatusesAndRerun) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in", out = dir / "out";
  fs::create_directories(in / "sub");
  fs::copy_file(face("2008_002079.jpg"), in / "a_face.jpg");
  fs::copy_file(face("2008_001322.jpg"), in / "sub" / "b_face.jpg");
  fs::copy_file(face("dogs.jpg"), in / "dogs.jpg");
  {  // grayscale PNG (1 channel) of a face photo: decoded as RGB, reconstructed
    cv::Mat bgr = cv::imread(face("2008_002079.jpg").string(), cv::IMREAD_COLOR), gray;
    cv::cvtColor(bgr, gray, cv::COLOR_BGR2GRAY);
    ASSERT_TRUE(cv::imwrite((in / "gray.png").string(), gray));
  }
  const std::string jpg = test::read_bytes(face("2008_001322.jpg"));
  test::write_bytes(in / "truncated.jpg", jpg.substr(0, jpg.size() / 2));
  {  // an 8000x8000 PNG header (nothing behind it): refused by --max-pixels before decoding
    std::string png = data::encode_png(test::make_image(16, 16, 3));
    const unsigned char big[8] = {0, 0, 0x1f, 0x40, 0, 0, 0x1f, 0x40};
    png.replace(16, 8, reinterpret_cast<const char*>(big), 8);
    test::write_bytes(in / "huge.png", png);
  }
  test::write_bytes(in / "notes.txt", "not an image\n");
  test::write_bytes(in / "noise.png", data::encode_png(test::make_image(64, 64, 9)));

  auto r = run_facetex(common_args(in, out, "--batch 2 --max-pixels 20000000"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto m = manifest(out / "manifest.jsonl");
  ASSERT_EQ(m.size(), 8u) << r.out;
  const std::map<std::string, std::string> expected = {
      {"a_face.jpg", "ok"},         {"sub/b_face.jpg", "ok"}, {"gray.png", "ok"},  {"dogs.jpg", "no_face"},
      {"noise.png", "no_face"},     {"truncated.jpg", "bad_input"}, {"huge.png", "bad_input"},
      {"notes.txt", "bad_input"}};
  for (const auto& [input, status] : expected) {
    ASSERT_TRUE(m.count(input)) << input;
    EXPECT_EQ(m.at(input)["status"], status) << input << ": " << m.at(input).dump();
  }
  EXPECT_NE(m.at("huge.png")["message"].get<std::string>().find("max-pixels"), std::string::npos);
  // The line names the input; the message does not repeat it.
  EXPECT_EQ(m.at("truncated.jpg")["message"], "truncated JPEG (no end-of-image marker)");
  for (const std::string name : {"a_face", "sub_b_face", "gray"}) {
    const fs::path d = out / name;
    for (const char* f : {"proj_tex.png", "proj_composed.png", "proj_composed_crop.png", "target.png",
                          "target_crop.png", "mask.png", "mask_crop.png", "rendered_rot.png", "proj_model.png"}) {
      const cv::Mat img = read_png(d / f);
      ASSERT_FALSE(img.empty()) << d / f;
    }
    EXPECT_EQ(read_png(d / "proj_tex.png").rows, 32);
    EXPECT_EQ(read_png(d / "target_crop.png").rows, 64);
    cv::Mat mask = read_png(d / "mask_crop.png");
    EXPECT_GT(cv::countNonZero(mask.reshape(1)), 64 * 64 / 10) << name << ": the face covers the crop";
    const cv::Mat target = read_png(d / "target.png"), orig = cv::imread((in / (name == "sub_b_face" ? "sub/b_face.jpg" : name == "gray" ? "gray.png" : "a_face.jpg")).string());
    EXPECT_EQ(target.rows, orig.rows);
    EXPECT_EQ(target.cols, orig.cols);
    const std::string obj = test::read_bytes(d / "proj_model.obj");
    EXPECT_NE(obj.find("\nv "), std::string::npos);
    EXPECT_NE(obj.find("\nf "), std::string::npos);
    EXPECT_NE(test::read_bytes(d / "proj_model.mtl").find("map_Kd"), std::string::npos);
    const json res = json::parse(test::read_bytes(d / "result.json"));
    for (const char* k : {"psnr", "ssim", "l1"}) {
      ASSERT_TRUE(res["scores"][k].is_number()) << k;
      EXPECT_TRUE(std::isfinite(res["scores"][k].get<double>())) << k;
    }
    EXPECT_GT(res["scores"]["ssim"].get<double>(), 0.3);  // the photo outside the face is kept
    EXPECT_NE(res["lpips"].get<std::string>().find("off"), std::string::npos);
    EXPECT_EQ(res["settings"]["steps"], 6);
    // projected_w.npz: the result's w broadcast to every layer, as NumPy reads it (skipped without python3-numpy).
    if (test::run_command("/usr/bin/python3 -c 'import numpy'").exit_code == 0) {
      const auto w = res["w"].get<std::vector<float>>();
      const auto py = test::run_command(fmt::format(
          "/usr/bin/python3 -c \"import numpy as np; w = np.load('{}')['w']; print(w.dtype, w.shape, "
          "float(abs(w - w[:, :1]).max()), repr(float(w[0, 0, 0])), repr(float(w[0, 0, -1])))\"",
          (d / "projected_w.npz").string()));
      ASSERT_EQ(py.exit_code, 0) << py.err;
      const int num_ws = sg::Generator(test_generator_config()).num_ws();
      EXPECT_EQ(py.out, fmt::format("float32 (1, {}, {}) 0.0 {} {}\n", num_ws, w.size(), double(w.front()),
                                    double(w.back())))
          << py.out;
    }
  }
  for (const char* none : {"dogs", "noise", "truncated", "huge", "notes"}) EXPECT_FALSE(fs::exists(out / none));
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_NE(e.path().filename().string().rfind(".partial", 0), 0u) << e.path();
  }

  // A second run finds everything finished and rewrites nothing.
  const auto mtime = fs::last_write_time(out / "a_face" / "result.json");
  r = run_facetex(common_args(in, out, "--batch 2 --max-pixels 20000000"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0 ok, 0 no face, 0 bad input, 0 errors, 8 finished earlier"), std::string::npos) << r.out;
  EXPECT_EQ(fs::last_write_time(out / "a_face" / "result.json"), mtime);
  EXPECT_EQ(manifest(out / "manifest.jsonl").size(), 8u);
  // The batch only changes the cost: still finished.
  r = run_facetex(common_args(in, out, "--batch 3 --max-pixels 20000000"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("8 finished earlier"), std::string::npos) << r.out;
  // Other steps: the finished outputs are not this job's; refused, naming the setting, and nothing is touched.
  r = run_facetex(common_args(in, out, "--batch 2 --max-pixels 20000000", 7));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("3 finished inputs in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("steps: 6 then, 7 now"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(out / "a_face" / "result.json"), mtime);
  // --overwrite redoes the three (their new folders replace the old ones); another --max-pixels retries the bad
  // inputs (the 8000x8000 header now passes the check and fails to decode); the no-face inputs stay final.
  r = run_facetex(common_args(in, out, "--batch 2 --overwrite", 7));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 ok, 0 no face, 3 bad input, 0 errors, 2 finished earlier"), std::string::npos) << r.out;
  EXPECT_EQ(json::parse(test::read_bytes(out / "a_face" / "result.json"))["settings"]["steps"], 7);
  EXPECT_EQ(manifest(out / "manifest.jsonl").at("huge.png")["status"], "bad_input");
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_NE(e.path().filename().string().rfind(".partial", 0), 0u) << e.path();
  }
  r = run_facetex(common_args(in, out, "--batch 2", 7));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("8 finished earlier"), std::string::npos) << r.out;
  // Another photo under a finished input's name: the result there is not this photo's, so it is done again.
  fs::copy_file(face("2008_001322.jpg"), in / "a_face.jpg", fs::copy_options::overwrite_existing);
  r = run_facetex(common_args(in, out, "--batch 2", 7));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 ok, 0 no face, 0 bad input, 0 errors, 7 finished earlier"), std::string::npos) << r.out;
  {
    const cv::Mat now = cv::imread((in / "a_face.jpg").string()), target = read_png(out / "a_face" / "target.png");
    EXPECT_EQ(target.size(), now.size());
  }
  // An empty folder is a mistake to name, not a job of nothing.
  fs::create_directories(dir / "empty");
  r = run_facetex(common_args(dir / "empty", dir / "empty_out"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("nothing to reconstruct"), std::string::npos) << r.err;

  // One photo as --inputs: a job of one, named after the file.
  r = run_facetex(common_args(in / "a_face.jpg", dir / "one"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto one = manifest(dir / "one" / "manifest.jsonl");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one.at("a_face.jpg")["status"], "ok");
  EXPECT_TRUE(fs::is_regular_file(dir / "one" / "a_face" / "result.json"));
  r = run_facetex(common_args(in / "missing.jpg", dir / "one"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("missing.jpg: no such input photo or folder"), std::string::npos) << r.err;
  // Bad settings are refused even when every input is finished (nothing would load the files).
  r = run_facetex(common_args(in, out, "--batch 2 --max-pixels 20000000 --lpips-vgg " + (dir / "nope.pt").string()));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("nope.pt: LPIPS VGG16 file not found"), std::string::npos) << r.err;
  r = run_facetex(common_args(in, out, "--noise-weight -1"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  // A network group named on purpose must exist (only the default falls back to G); the message lists the groups.
  r = run_facetex(common_args(in / "a_face.jpg", dir / "net", "--network G_emma"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no network group 'G_emma' (the file holds: G_ema)"), std::string::npos) << r.err;
}

TEST(Reconstruct, BatchedAndOneAtATimeAgree) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  const char* photos[] = {"2008_002079.jpg", "2008_001322.jpg", "2007_007763.jpg", "2009_004587.jpg"};
  for (const char* p : photos) fs::copy_file(face(p), in / p);
  // Batch 4 with both modulated-convolution paths (auto = split for a batch) against batch 1 (grouped).
  auto r = run_facetex(common_args(in, dir / "b4", "--batch 4 --seed 7"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(common_args(in, dir / "b4g", "--batch 4 --seed 7 --modconv grouped"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(common_args(in, dir / "b1", "--batch 1 --seed 7"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // The I/O workers (prepare and write in parallel) change nothing: one worker gives the same bytes.
  r = run_facetex(common_args(in, dir / "b4s", "--batch 4 --seed 7 --io-threads 1"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(common_args(in, dir / "bad", "--batch 4 --modconv fused"));
  EXPECT_EQ(r.exit_code, 2) << "an unknown --modconv is a usage error";
  EXPECT_NE(r.err.find("--modconv fused"), std::string::npos) << r.err;
  int compared = 0;
  for (const auto& [input, line] : manifest(dir / "b4" / "manifest.jsonl")) {
    if (line["status"] != "ok") continue;
    const std::string name = line["name"];
    const json b = json::parse(test::read_bytes(dir / "b1" / name / "result.json"));
    for (const char* file : {"proj_tex.png", "proj_composed.png", "proj_composed_crop.png", "rendered_rot.png",
                             "proj_model.obj"}) {
      EXPECT_EQ(test::read_bytes(dir / "b4" / name / file), test::read_bytes(dir / "b4s" / name / file))
          << name << "/" << file;
    }
    for (const char* run : {"b4", "b4g"}) {
      const json a = json::parse(test::read_bytes(dir / run / name / "result.json"));
      EXPECT_EQ(a["run_settings"]["modconv"], std::string(run) == "b4" ? "auto" : "grouped");
      const auto wa = a["w"].get<std::vector<double>>(), wb = b["w"].get<std::vector<double>>();
      ASSERT_EQ(wa.size(), wb.size());
      double max_dw = 0;
      for (size_t i = 0; i < wa.size(); ++i) max_dw = std::max(max_dw, std::abs(wa[i] - wb[i]));
      // Equal up to float rounding (batched vs single convolutions, split vs grouped modulation), which Adam's
      // normalised steps amplify a little where gradients are near zero.
      EXPECT_LT(max_dw, 1e-4) << run << " " << name;
      cv::Mat ta = read_png(dir / run / name / "proj_tex.png"), tb = read_png(dir / "b1" / name / "proj_tex.png");
      double maxdiff = cv::norm(ta, tb, cv::NORM_INF);
      EXPECT_LE(maxdiff, 1) << run << " " << name;
      EXPECT_NEAR(a["scores"]["psnr"].get<double>(), b["scores"]["psnr"].get<double>(), 0.05) << run << " " << name;
      std::printf("%s: max |w_%s - w_b1| %.2e, texture max diff %.0f, PSNR %.4f vs %.4f dB\n", name.c_str(), run,
                  max_dw, maxdiff, a["scores"]["psnr"].get<double>(), b["scores"]["psnr"].get<double>());
    }
    ++compared;
  }
  EXPECT_GE(compared, 3);
  // A different seed gives a different result (the seed reaches the per-image generators).
  r = run_facetex(common_args(in, dir / "s8", "--batch 4 --seed 8"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string name = manifest(dir / "b4" / "manifest.jsonl").begin()->second["name"];
  const json a = json::parse(test::read_bytes(dir / "b4" / name / "result.json"));
  const json c = json::parse(test::read_bytes(dir / "s8" / name / "result.json"));
  EXPECT_NE(a["w"], c["w"]);
}

TEST(Reconstruct, SigtermFinishesTheBatchExits75AndRerunSkipsFinishedItems) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in", out = dir / "out";
  fs::create_directories(in);
  for (int i = 0; i < 6; ++i) fs::copy_file(face("2008_002079.jpg"), in / fmt::format("p{}.jpg", i));
  // Start, wait for the first finished item, send SIGTERM, report the exit code.
  const std::string cmd = fmt::format(
      "sh -c '{} {} & pid=$!; i=0; while [ ! -f {}/p0/result.json ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i+1)); "
      "done; kill -TERM $pid; wait $pid; echo rc=$?'",
      FACETEX_BINARY_PATH, common_args(in, out, "--batch 1", 30), out.string());
  auto r = test::run_command(cmd);
  EXPECT_NE(r.out.find("rc=75"), std::string::npos) << r.out << r.err;
  auto m = manifest(out / "manifest.jsonl");
  ASSERT_GE(m.size(), 1u);
  ASSERT_LT(m.size(), 6u) << "the job stopped early";
  for (const auto& [input, line] : m) {
    EXPECT_EQ(line["status"], "ok") << input;
    EXPECT_TRUE(fs::is_regular_file(out / line["name"].get<std::string>() / "result.json"));
  }
  const size_t done = m.size();
  const auto mtime = fs::last_write_time(out / "p0" / "result.json");
  r = run_facetex(common_args(in, out, "--batch 1", 30));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(fmt::format("{} finished earlier", done)), std::string::npos) << r.out;
  EXPECT_EQ(fs::last_write_time(out / "p0" / "result.json"), mtime);
  m = manifest(out / "manifest.jsonl");
  EXPECT_EQ(m.size(), 6u);
  for (const auto& [input, line] : m) EXPECT_EQ(line["status"], "ok") << input;
}

// The LPIPS path with a stand-in TorchScript file of NVIDIA's vgg16.pt interface (forward(img, resize_images,
// return_lpips) -> [B, F] unit-normalised features of 0-255 images), scripted by Debian's python3-torch; it insists
// on resize_images=False and return_lpips=True and on frozen weights (a loaded module's parameters require grad as
// saved; backward would compute their gradients every step), so a wrong call fails the run.
TEST(Reconstruct, LpipsTorchScriptInterface) {
  FACETEX_REQUIRE_ASSETS();
  const std::string python = "/usr/bin/python3";
  if (test::run_command(python + " -c 'import torch'").exit_code != 0) GTEST_SKIP() << "no python3-torch";
  test::TempDir dir;
  const std::string script = R"(
import sys, torch
class Stub(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))  # saved with requires_grad, as vgg16.pt's weights are
    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        assert not resize_images and return_lpips
        assert not self.scale.requires_grad, "LPIPS weights must be frozen"
        f = torch.nn.functional.adaptive_avg_pool2d(img / 127.5 - 1, [8, 8]).flatten(1) * self.scale
        return f / f.square().sum(dim=1, keepdim=True).sqrt()
torch.jit.script(Stub()).save(sys.argv[1])
)";
  test::write_bytes(dir / "make.py", script);
  auto r = test::run_command(python + " " + (dir / "make.py").string() + " " + (dir / "vgg16.pt").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(face("2008_002079.jpg"), in / "a.jpg");
  r = run_facetex(common_args(in, dir / "out", "--lpips-vgg " + (dir / "vgg16.pt").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("LPIPS on"), std::string::npos) << r.out;
  const json res = json::parse(test::read_bytes(dir / "out" / "a" / "result.json"));
  EXPECT_EQ(res["lpips"], (dir / "vgg16.pt").string());
  EXPECT_TRUE(std::isfinite(res["scores"]["final_loss"].get<double>()));
  // VGG16 in chunks (--lpips-batch: forward and backward per chunk, the gradient at the images summed into one
  // backward through G) is the one-pass projection up to rounding: a batch of 2 in chunks of 1 and of 2.
  fs::copy_file(face("2008_001322.jpg"), in / "b.jpg");
  const std::string vgg = "--lpips-vgg " + (dir / "vgg16.pt").string() + " --batch 2 --seed 3 ";
  r = run_facetex(common_args(in, dir / "chunk1", vgg + "--lpips-batch 1"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(common_args(in, dir / "chunk2", vgg + "--lpips-batch 2"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* name : {"a", "b"}) {
    const json a = json::parse(test::read_bytes(dir / "chunk1" / name / "result.json"));
    const json b = json::parse(test::read_bytes(dir / "chunk2" / name / "result.json"));
    EXPECT_EQ(a["run_settings"]["lpips_batch"], 1);
    EXPECT_EQ(b["run_settings"]["lpips_batch"], 2);
    const auto wa = a["w"].get<std::vector<double>>(), wb = b["w"].get<std::vector<double>>();
    ASSERT_EQ(wa.size(), wb.size());
    double max_dw = 0;
    for (size_t i = 0; i < wa.size(); ++i) max_dw = std::max(max_dw, std::abs(wa[i] - wb[i]));
    EXPECT_LT(max_dw, 1e-4) << name;
    EXPECT_NEAR(a["scores"]["final_loss"].get<double>(), b["scores"]["final_loss"].get<double>(),
                1e-4 * std::abs(b["scores"]["final_loss"].get<double>()))
        << name;
  }
  r = run_facetex(common_args(in, dir / "chunk0", vgg + "--lpips-batch 0"));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--lpips-batch"), std::string::npos) << r.err;
  // A missing file is a data error (exit 3) naming it.
  r = run_facetex(common_args(in, dir / "out2", "--lpips-vgg " + (dir / "nope.pt").string()));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("nope.pt"), std::string::npos) << r.err;
  // So is a file that is not a TorchScript archive.
  test::write_bytes(dir / "garbage.pt", "not a TorchScript archive\n");
  r = run_facetex(common_args(in, dir / "out3", "--lpips-vgg " + (dir / "garbage.pt").string()));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("garbage.pt: not a TorchScript module"), std::string::npos) << r.err;
}

// tools/make_lpips_standin.py (the benches' random-weight vgg16.pt, for cost) loads and runs through the real call:
// the full VGG16 on the crop, its weights frozen, chunked.
TEST(Reconstruct, LpipsStandInRuns) {
  FACETEX_REQUIRE_ASSETS();
  const std::string python = "/usr/bin/python3";
  if (test::run_command(python + " -c 'import torch'").exit_code != 0) GTEST_SKIP() << "no python3-torch";
  const char* src = std::getenv("FACETEX_SOURCE_DIR");  // set by ctest
  if (!src) GTEST_SKIP() << "FACETEX_SOURCE_DIR not set";
  test::TempDir dir;
  const fs::path tool = fs::path(src) / "tools" / "make_lpips_standin.py";
  auto r = test::run_command(python + " " + tool.string() + " " + (dir / "vgg16.pt").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("14.7 M random parameters"), std::string::npos) << r.out;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(face("2008_002079.jpg"), in / "a.jpg");
  fs::copy_file(face("2008_001322.jpg"), in / "b.jpg");
  r = run_facetex(common_args(in, dir / "out",
                              "--lpips-vgg " + (dir / "vgg16.pt").string() + " --batch 2 --lpips-batch 1", 2));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* name : {"a", "b"}) {
    const json res = json::parse(test::read_bytes(dir / "out" / name / "result.json"));
    EXPECT_EQ(res["lpips"], (dir / "vgg16.pt").string());
    EXPECT_TRUE(std::isfinite(res["scores"]["final_loss"].get<double>()));
    EXPECT_GT(res["scores"]["final_loss"].get<double>(), 0.0);
  }
}

// --inputs may be a packed dataset: rows by key, the same statuses and outputs.
TEST(Reconstruct, PackedShardsAsInputs) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in", shards = dir / "shards";
  fs::create_directories(in);
  fs::copy_file(face("2008_002079.jpg"), in / "a.jpg");
  fs::copy_file(face("2008_001322.jpg"), in / "b.jpg");
  test::write_bytes(in / "c.png", data::encode_png(test::make_image(96, 96, 4)));
  auto r = run_facetex(fmt::format("data pack --images {} --out {} --resolution 256 --square center-crop "
                                   "--allow-upscale --log-level warn",
                                   in.string(), shards.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = run_facetex(common_args(shards, dir / "out", "--batch 2"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto m = manifest(dir / "out" / "manifest.jsonl");
  ASSERT_EQ(m.size(), 3u) << r.out;
  int ok = 0;
  for (const auto& [input, line] : m) {
    if (line["status"] == "ok") {
      ++ok;
      EXPECT_EQ(read_png(dir / "out" / line["name"].get<std::string>() / "target.png").rows, 256);
    }
  }
  EXPECT_GE(ok, 1) << r.out;
}

// A synthetic world of `count` 64² renders at `world`, and a job on its shards: landmarks from their annotations,
// the world's own face model, `steps` steps on a 64² crop (no assets needed).
train::ReconstructOptions world_job(const fs::path& world, int count, int steps) {
  train::SyntheticWorldOptions wo;
  wo.out = world;
  wo.count = count;
  wo.resolution = 64;
  train::write_synthetic_world(wo);
  train::ReconstructOptions o;
  o.checkpoint = checkpoint();
  o.inputs = world / "shards";
  o.schedule.steps = steps;
  o.schedule.w_avg_samples = 64;
  o.crop_resolution = 64;
  o.model = train::load_world_model(world);
  o.model_name = "synthetic world";
  o.landmarks = train::annotation_landmark_provider(o.model);
  return o;
}

// The library path with a packed dataset and landmarks from its own annotations (a synthetic world: exact geometry,
// no detector) reconstructs every row — the reconstructor hands each shard row to the landmark source (it once passed
// no shard, and the annotation source crashed). Folder inputs with that source are a usage error before any work.
TEST(Reconstruct, ShardRowsWithLandmarksFromTheirAnnotations) {
  test::TempDir dir;
  train::ReconstructOptions o = world_job(dir / "world", 3, 2);
  o.out = dir / "out";
  o.batch = 2;
  const train::ReconstructResult r = train::reconstruct(o);
  EXPECT_EQ(r.ok, 3);
  EXPECT_EQ(r.no_face + r.bad_input + r.error, 0);
  // The same through the command: --landmarks annotations with the world's own face model (no assets needed).
  const fs::path world = dir / "world";
  auto cli = run_facetex(fmt::format(
      "reconstruct --checkpoint {} --inputs {} --out {} --steps 2 --w-avg-samples 64 --crop-resolution 64 --batch 2 "
      "--landmarks annotations --model {}:{} --log-level warn",
      checkpoint().string(), (world / "shards").string(), (dir / "out-cli").string(), (world / "model.mat").string(),
      (world / "uv.npy").string()));
  ASSERT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  EXPECT_NE(cli.out.find("3 ok"), std::string::npos) << cli.out;
  cli = run_facetex(fmt::format("reconstruct --checkpoint {} --inputs {} --out {} --landmarks nose",
                                checkpoint().string(), (world / "shards").string(), (dir / "out-bad").string()));
  EXPECT_EQ(cli.exit_code, 2) << cli.out << cli.err;
  EXPECT_NE(cli.err.find("--landmarks must be dlib or annotations"), std::string::npos) << cli.err;

  fs::create_directories(dir / "photos");
  test::write_bytes(dir / "photos" / "a.png", data::encode_png(test::make_image(64, 64, 3)));
  o.inputs = dir / "photos";
  o.out = dir / "out2";
  try {  // refused before any work, rather than an error for every photo
    train::reconstruct(o);
    ADD_FAILURE() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--landmarks annotations reads each input's /coeffs + /crop"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out2" / "manifest.jsonl"));
  // Shards whose part manifests were never merged are a dataset to merge, not a folder of 'photos'.
  fs::create_directories(dir / "unmerged");
  fs::copy_file(world / "shards" / "shard-00000.h5", dir / "unmerged" / "shard-00000.h5");
  o.inputs = dir / "unmerged";
  try {
    train::reconstruct(o);
    ADD_FAILURE() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("run `facetex data merge-manifest"), std::string::npos) << e.what();
  }
}

// bench_reconstruct's public-approach row (ReconstructOptions::public_baseline: w statistics per photo, the geometry
// rasterised every step) does the public projector's work for the same result: its outputs are byte for byte those
// of the ordinary one-photo run. It projects one photo at a time only.
TEST(Reconstruct, PublicBaselineRedoesTheWorkForTheSameResult) {
  test::TempDir dir;
  train::ReconstructOptions o = world_job(dir / "world", 2, 3);
  o.out = dir / "ours";
  ASSERT_EQ(train::reconstruct(o).ok, 2);
  o.out = dir / "public";
  o.public_baseline = true;
  ASSERT_EQ(train::reconstruct(o).ok, 2);
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "ours")) {
    const fs::path rel = fs::relative(e.path(), dir / "ours");
    if (!e.is_regular_file() || rel.extension() == ".json" || rel.extension() == ".jsonl") continue;
    EXPECT_EQ(test::read_bytes(e.path()), test::read_bytes(dir / "public" / rel)) << rel;
    ++files;
  }
  EXPECT_GE(files, 20);
  for (const auto& e : fs::directory_iterator(dir / "ours")) {
    if (!e.is_directory()) continue;
    const json a = json::parse(test::read_bytes(e.path() / "result.json"));
    const json b = json::parse(test::read_bytes(dir / "public" / e.path().filename() / "result.json"));
    EXPECT_EQ(a["w"], b["w"]);
    EXPECT_EQ(a["scores"], b["scores"]);
  }
  o.batch = 2;
  o.out = dir / "public2";
  EXPECT_THROW(train::reconstruct(o), UsageError);
}

TEST(Reconstruct, PartsAreDisjointAndCoverTheInputs) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in", out = dir / "out";
  fs::create_directories(in);
  for (int i = 0; i < 5; ++i) test::write_bytes(in / fmt::format("x{}.txt", i), "no");
  std::map<std::string, int> seen;
  for (int p = 0; p < 2; ++p) {
    auto r = run_facetex(common_args(in, out, fmt::format("--part {}/2", p)));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    for (const auto& [input, line] : manifest(out / fmt::format("manifest.part-{}-of-2.jsonl", p))) ++seen[input];
  }
  EXPECT_EQ(seen.size(), 5u);
  for (const auto& [input, n] : seen) EXPECT_EQ(n, 1) << input;
}


// ---- Identity term (--id-weight) ----

namespace aux = models::aux;

fs::path face_api_manifest_file() {
  return test::assets_dir() / "face-api" / "model" / "face_recognition_model-weights_manifest.json";
}

struct DetectedPhoto {
  data::Image img;
  std::vector<aux::Landmarks68> faces;
  at::Tensor chw() const {  // [1, 3, H, W] float 0..255
    return at::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, at::kByte)
        .permute({2, 0, 1}).to(at::kFloat).unsqueeze(0).contiguous();
  }
};

DetectedPhoto detect(const std::string& name) {
  DetectedPhoto p;
  p.img = data::decode_image(read_file(face(name)), name);
  aux::DlibLandmarker landmarker(test::assets_dir() / "dlib" / "shape_predictor_68_face_landmarks.dat");
  for (const auto& f : landmarker.detect(p.img.rgb.data(), p.img.height, p.img.width)) p.faces.push_back(f.landmarks);
  return p;
}

at::Tensor chip_map(const aux::FaceChipGeometry& g) {
  return at::tensor(std::vector<double>(g.m, g.m + 6), at::kDouble).view({1, 2, 3});
}

// Mean |differentiable chip - dlib's extract_image_chip| in 0..255 units, per face, on real photos (faces of
// several sizes: dlib's pyramid levels 0..n).
TEST(ReconstructIdentity, DifferentiableChipMatchesDlibExtractImageChip) {
  FACETEX_REQUIRE_ASSETS();
  int faces = 0;
  double worst = 0, sum = 0;
  for (const char* name : {"2008_002079.jpg", "bald_guys.jpg", "Tom_Cruise_avp_2014_4.jpg", "2009_004587.jpg"}) {
    const DetectedPhoto p = detect(name);
    const at::Tensor img = p.chw();
    for (const auto& lm : p.faces) {
      const std::vector<uint8_t> ref = aux::extract_face_chip(p.img.rgb.data(), p.img.height, p.img.width, lm);
      const at::Tensor ref_t = aux::chips_to_tensor({ref}).to(at::kFloat);
      const aux::FaceChipGeometry g = aux::face_chip_geometry(lm);
      const at::Tensor m = chip_map(g);
      EXPECT_EQ(aux::face_chip_pyramid_levels(m[0]), g.pyramid_levels) << name;
      const at::Tensor chip = aux::sample_face_chips(img, m);
      ASSERT_EQ(chip.sizes().vec(), (std::vector<int64_t>{1, 3, 150, 150}));
      // The inner chip (dlib zeroes pixels whose bilinear neighbourhood leaves the image; grid_sample blends).
      const double mad = (chip - ref_t).abs().mean().item<double>();
      const double p99 = at::quantile((chip - ref_t).abs().flatten(), 0.99).item<double>();
      const double bias = (chip - ref_t).mean().item<double>();
      std::printf("%s face %d: rect %.0fx%.0f, angle %.3f rad, %d pyramid levels: mean |diff| %.3f (signed %+.3f), "
                  "p99 %.2f (0..255)\n",
                  name, faces, g.rect_width, g.rect_height, g.angle, g.pyramid_levels, mad, bias, p99);
      // dlib floors to uint8 after the bilinear step and after each pyramid level (~0.5 each on average).
      EXPECT_LT(mad, 0.75 + 0.5 * g.pyramid_levels) << name;
      worst = std::max(worst, mad);
      sum += mad;
      ++faces;
    }
  }
  ASSERT_GE(faces, 6);
  std::printf("differentiable chip vs dlib: %d faces, mean of means %.3f, worst %.3f (0..255)\n", faces, sum / faces,
              worst);
}

TEST(ReconstructIdentity, GradPathDescriptorEqualsNoGradPath) {
  FACETEX_REQUIRE_ASSETS();
  const DetectedPhoto p = detect("bald_guys.jpg");
  ASSERT_GE(p.faces.size(), 2u);
  std::vector<at::Tensor> maps;
  for (const auto& lm : p.faces) maps.push_back(chip_map(aux::face_chip_geometry(lm)));
  const at::Tensor img = p.chw().expand({int64_t(maps.size()), 3, p.img.height, p.img.width});
  const at::Tensor chips = aux::sample_face_chips(img, at::cat(maps));
  const aux::DlibFaceResNet net(face_api_manifest_file());
  const at::Tensor a = net.descriptor(chips);
  const at::Tensor x = chips.clone().set_requires_grad(true);
  const at::Tensor b = net.descriptor_differentiable(x);
  EXPECT_TRUE(b.requires_grad());
  EXPECT_FALSE(a.requires_grad());
  const double diff = (a - b.detach()).abs().max().item<double>();
  std::printf("descriptor grad path vs no-grad path (%zu faces): max |diff| %.3g\n", maps.size(), diff);
  EXPECT_LE(diff, 1e-5);
}

TEST(ReconstructIdentity, IdentityTermGradientIsFiniteAndNonZero) {
  FACETEX_REQUIRE_ASSETS();
  const DetectedPhoto p = detect("2008_002079.jpg");
  ASSERT_FALSE(p.faces.empty());
  const at::Tensor m = chip_map(aux::face_chip_geometry(p.faces[0]));
  const at::Tensor target = p.chw();
  const aux::DlibFaceResNet net(face_api_manifest_file());
  const at::Tensor target_desc = net.descriptor(aux::sample_face_chips(target, m));
  // A composite that differs from the target (a blurred, darker copy), the variable of the gradient.
  const at::Tensor composite = (at::avg_pool2d(target, {5, 5}, {1, 1}, {2, 2}) * 0.8).detach().set_requires_grad(true);
  const at::Tensor desc = net.descriptor_differentiable(aux::sample_face_chips(composite, m));
  const at::Tensor loss = 1 - at::cosine_similarity(desc, target_desc, 1);
  loss.sum().backward();
  const at::Tensor g = composite.grad();
  ASSERT_TRUE(g.defined());
  const bool finite = at::isfinite(g).all().item<bool>();
  const double gabs = g.abs().sum().item<double>();
  const double nonzero = (g != 0).to(at::kDouble).mean().item<double>();
  std::printf("identity term %.4f: |grad| sum %.3e, %.2f%% of the composite's pixels with a non-zero gradient\n",
              loss.item<double>(), gabs, 100 * nonzero);
  EXPECT_TRUE(finite);
  EXPECT_GT(loss.item<double>(), 0);
  EXPECT_GT(gabs, 0);
}

TEST(ReconstructIdentity, IdWeightRunRecordsTheIdentityDistance) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir dir;
  const fs::path in = dir / "in";
  fs::create_directories(in);
  fs::copy_file(face("2008_002079.jpg"), in / "a_face.jpg");
  const std::string base = fmt::format(
      "reconstruct --checkpoint {} --inputs {} --out {{}} --steps 4 --w-avg-samples 200 --crop-resolution 256 "
      "--model canonical --log-level warn {{}}",
      checkpoint().string(), in.string());
  auto r = run_facetex(fmt::format(fmt::runtime(base), (dir / "id").string(),
                                   "--id-weight 1 --face-api " + (test::assets_dir() / "face-api").string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json j = json::parse(test::read_bytes(dir / "id" / "a_face" / "result.json"));
  EXPECT_EQ(j["identity"]["weight"].get<double>(), 1.0);
  EXPECT_EQ(j["settings"]["id_weight"].get<double>(), 1.0);
  const double d = j["identity"]["distance"].get<double>();
  EXPECT_TRUE(std::isfinite(d) && d >= 0 && d <= 2) << d;
  EXPECT_EQ(j["scores"]["identity_distance"].get<double>(), d);
  std::printf("--id-weight 1, 4 steps, crop 256: identity distance (1 - cos) %.4f, euclidean %.4f, final loss %.4f\n",
              d, j["identity"]["euclidean"].get<double>(), j["scores"]["final_loss"].get<double>());
  // The target's chip in the crop frame (dlib's chip geometry mapped through the crop) is the same face as dlib's
  // own chip of the original photo: same person by dlib's threshold.
  {
    const DetectedPhoto p = detect("2008_002079.jpg");
    ASSERT_FALSE(p.faces.empty());
    const std::vector<uint8_t> ref = aux::extract_face_chip(p.img.rgb.data(), p.img.height, p.img.width, p.faces[0]);
    const data::Image ours = data::decode_image(read_file(dir / "id" / "a_face" / "id_chip_target.png"), "chip");
    ASSERT_EQ(ours.width, 150);
    const aux::DlibFaceResNet net(face_api_manifest_file());
    const at::Tensor dd = net.descriptor(std::vector<std::vector<uint8_t>>{ref, ours.rgb});
    const double dist = aux::descriptor_distances(dd[0].unsqueeze(0), dd[1].unsqueeze(0)).item<double>();
    const double mad = (aux::chips_to_tensor({ref}).to(at::kFloat) - aux::chips_to_tensor({ours.rgb}).to(at::kFloat))
                           .abs().mean().item<double>();
    std::printf("crop-frame target chip vs dlib chip of the photo: mean |diff| %.2f (0..255), descriptor distance "
                "%.4f\n", mad, dist);
    EXPECT_LT(dist, 0.6);
    EXPECT_LT(mad, 10.0);  // two resamplings apart: the bicubic crop, then the chip
  }
  // Off by default: the weight 0 recorded, no distance.
  r = run_facetex(fmt::format(fmt::runtime(base), (dir / "off").string(), ""));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json k = json::parse(test::read_bytes(dir / "off" / "a_face" / "result.json"));
  EXPECT_EQ(k["identity"]["weight"].get<double>(), 0.0);
  EXPECT_TRUE(k["scores"]["identity_distance"].is_null());
  // Missing weights with --id-weight > 0: a usage error naming the flag, nothing written.
  r = run_facetex(fmt::format(fmt::runtime(base), (dir / "missing").string(),
                              "--id-weight 0.5 --face-api " + (dir / "nowhere").string()));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("--id-weight"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "missing" / "a_face"));
}

}  // namespace
}  // namespace facetex
