#include "train/synth_metric.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/atomic_file.h"
#include "core/config.h"
#include "core/h5.h"
#include "data/dataset.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "train/checkpoint.h"

namespace facetex::train {
namespace {

// Fixed random features: the same weights in every process (seeded generator), computed in float32 on the CPU
// (oneDNN convolutions); the kernel sums are done in float64.
at::Tensor features(const at::Tensor& images) {
  at::NoGradGuard no_grad;
  static const std::vector<at::Tensor> weights = [] {
    at::Generator gen = at::detail::createCPUGenerator(20221023);
    std::vector<at::Tensor> w;
    const int64_t channels[4] = {3, 32, 64, 128};
    for (int k = 0; k < 3; ++k) {
      const double std = std::sqrt(2.0 / (channels[k] * 9));
      w.push_back(at::randn({channels[k + 1], channels[k], 3, 3}, gen) * std);
    }
    return w;
  }();
  at::Tensor x = images.detach().to(at::kCPU, at::kFloat);
  if (x.size(2) != 64) x = at::upsample_bilinear2d(x, {64, 64}, /*align_corners=*/false);
  for (const auto& w : weights) x = at::leaky_relu(at::conv2d(x, w, {}, {2, 2}, {1, 1}), 0.2);
  return at::cat({x.mean({2, 3}), x.std({2, 3})}, 1).to(at::kDouble);  // [N, 256]
}

// Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018; StyleGAN2-ADA's kid.py on one subset).
double kid(const at::Tensor& a, const at::Tensor& b) {
  const double d = static_cast<double>(a.size(1));
  const double n = static_cast<double>(a.size(0)), m = static_cast<double>(b.size(0));
  at::Tensor kaa = (a.matmul(a.t()) / d + 1).pow(3), kbb = (b.matmul(b.t()) / d + 1).pow(3);
  at::Tensor kab = (a.matmul(b.t()) / d + 1).pow(3);
  const double saa = (kaa.sum() - kaa.diagonal().sum()).item<double>() / (n * (n - 1));
  const double sbb = (kbb.sum() - kbb.diagonal().sum()).item<double>() / (m * (m - 1));
  return saa + sbb - 2 * kab.mean().item<double>();
}

}  // namespace

SynthDistance synth_distance(const at::Tensor& generated, const at::Tensor& truth) {
  FACETEX_CHECK_RUNTIME(generated.dim() == 4 && truth.dim() == 4 && generated.size(1) == 3 && truth.size(1) == 3 &&
                            generated.size(0) >= 2 && truth.size(0) >= 2,
                        "synth_distance: need [N, 3, T, T] batches of at least 2, got {} and {}",
                        generated.sizes().vec(), truth.sizes().vec());
  SynthDistance out;
  out.kid = kid(features(generated), features(truth));
  at::Tensor g = generated.detach().to(at::kCPU, at::kDouble), t = truth.detach().to(at::kCPU, at::kDouble);
  at::Tensor dm = (g.mean({0, 2, 3}) - t.mean({0, 2, 3})).abs().sum();
  at::Tensor ds = (g.transpose(0, 1).reshape({3, -1}).std(1) - t.transpose(0, 1).reshape({3, -1}).std(1)).abs().sum();
  out.colour = (dm + ds).item<double>();
  return out;
}

}  // namespace facetex::train

// ---- facetex metrics synth

namespace facetex::train {
namespace {

namespace fs = std::filesystem;

SynthDistance distance_of(const models::NetworkWeights& g_ema, const std::string& context, const at::Tensor& truth) {
  models::stylegan2::Generator G(models::stylegan2::parse_generator_config(g_ema.init_kwargs, context));
  models::load_network(G, g_ema, context);
  return generator_synth_distance(G, truth);
}

void plot_curve(const std::string& path, const std::vector<std::pair<double, double>>& points) {
  const int W = 640, H = 400, L = 70, R = 20, T = 30, B = 50;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  // Log scale: the distance falls by orders of magnitude.
  double xmax = 1e-9, ymin = 1e30, ymax = -1e30;
  for (const auto& [x, y] : points) {
    xmax = std::max(xmax, x);
    ymin = std::min(ymin, std::log10(std::max(y, 1e-6)));
    ymax = std::max(ymax, std::log10(std::max(y, 1e-6)));
  }
  ymin = std::floor(ymin), ymax = std::ceil(ymax);
  if (ymax <= ymin) ymax = ymin + 1;
  auto to_px = [&](double x, double y) {
    const double ly = std::log10(std::max(y, 1e-6));
    return cv::Point(L + static_cast<int>((W - L - R) * x / xmax),
                     H - B - static_cast<int>((H - T - B) * (ly - ymin) / (ymax - ymin)));
  };
  cv::line(img, {L, H - B}, {W - R, H - B}, cv::Scalar(0, 0, 0), 1);
  cv::line(img, {L, H - B}, {L, T}, cv::Scalar(0, 0, 0), 1);
  for (size_t i = 1; i < points.size(); ++i) {
    cv::line(img, to_px(points[i - 1].first, points[i - 1].second), to_px(points[i].first, points[i].second),
             cv::Scalar(200, 80, 0), 2, cv::LINE_AA);
  }
  for (const auto& [x, y] : points) cv::circle(img, to_px(x, y), 3, cv::Scalar(200, 80, 0), -1, cv::LINE_AA);
  const auto text = [&](const std::string& s, cv::Point p) {
    cv::putText(img, s, p, cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  };
  text("synth_distance (log scale) vs kimg", {L, 20});
  text(fmt::format("1e{:+.0f}", ymax), {5, T + 5});
  text(fmt::format("1e{:+.0f}", ymin), {5, H - B + 5});
  text(fmt::format("{:.2f} kimg", xmax), {W - R - 80, H - B + 20});
  std::vector<uint8_t> png;
  cv::imencode(".png", img, png);
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

}  // namespace

at::Tensor world_truth_textures(const data::Dataset& ds, int64_t n) {
  const auto& first = *ds.shards().front();
  FACETEX_CHECK_DATA(first.has_annotation("gt_texture"), "{}: no /gt_texture (not a synthetic world)", first.path());
  n = std::min(n, ds.size());
  const int64_t row = first.annotation_row_size("gt_texture");
  const int64_t t = static_cast<int64_t>(std::lround(std::sqrt(row / 3.0)));
  at::Tensor out = at::empty({n, t, t, 3}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    auto loc = ds.locate(i);
    loc.shard->read_annotation("gt_texture", loc.row, out[i].data_ptr<uint8_t>());
  }
  return out.permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1;
}

SynthDistance generator_synth_distance(models::stylegan2::Generator& G, const at::Tensor& truth) {
  at::NoGradGuard no_grad;
  const bool was_training = G.is_training();
  G.eval();
  at::Generator gen = at::detail::createCPUGenerator(1);
  const at::Tensor z = at::randn({truth.size(0), G.config().z_dim}, gen).to(G.synthesis->parameters().front().device());
  models::stylegan2::SynthesisOptions so;
  so.noise_mode = models::stylegan2::NoiseMode::kConst;
  const SynthDistance d = synth_distance(G.forward(z, {}, so), truth);
  G.train(was_training);
  return d;
}

SynthReport evaluate_synth_run(const std::string& run_dir_text) {
  const fs::path run_dir = run_dir_text;
  FACETEX_CHECK_DATA(fs::exists(run_dir / "config.toml"), "{}: not a run folder (no config.toml)", run_dir.string());
  const Config config = Config::load(run_dir / "config.toml");
  const std::string shards = config.get_string("data.shards", "");
  FACETEX_CHECK_DATA(!shards.empty(), "{}: config.toml names no data.shards", run_dir.string());
  const at::Tensor truth = world_truth_textures(*data::Dataset::open(shards), 256);
  SynthReport r;
  FACETEX_CHECK_DATA(fs::exists(run_dir / "init.h5"), "{}: no init.h5 (the run has not started)", run_dir.string());
  r.init = distance_of(models::read_network(run_dir / "init.h5", "G_ema"), (run_dir / "init.h5").string(), truth);
  auto latest = find_latest_checkpoint(run_dir);
  FACETEX_CHECK_DATA(latest.has_value(), "{}: no checkpoint yet", run_dir.string());
  r.now = distance_of(models::read_network(*latest, "G_ema"), latest->string(), truth);
  {
    h5::Id f = h5::open_file(latest->string());
    h5::Id t = h5::open_group(f, "train");
    r.now_kimg = h5::read_attr_int(t, "cur_nimg") / 1000.0;
  }
  std::vector<std::pair<double, double>> points;
  std::ifstream in(run_dir / "metric-synth.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    points.emplace_back(j.at("kimg").get<double>(), j.at("synth_distance").get<double>());
  }
  if (points.size() >= 2) {
    r.plot = (run_dir / "synth_distance.png").string();
    plot_curve(r.plot, points);
  }
  return r;
}

}  // namespace facetex::train
