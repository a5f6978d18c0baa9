// `facetex metrics ...`: wiring only; the metrics live in train/ (train/metrics/ for fid, kid and recon).
#include <ATen/Context.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "cluster/communicator.h"
#include "cluster/world.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "train/metrics/feature_cache.h"
#include "train/metrics/features.h"
#include "train/metrics/fid_kid.h"
#include "train/metrics/recon_eval.h"
#include "train/synth_metric.h"

namespace facetex::app {
namespace {

// Defaults inside the assets folder (--assets, $FACETEX_ASSETS or <source>/assets), wherever the job runs from.
constexpr const char* kFaceApiManifest = "face-api/model/face_recognition_model-weights_manifest.json";
constexpr const char* kAssetsHelp = "Assets folder for the default --face-api / --landmarks";

std::string face_api_manifest(const Config& c) {
  return c.get_string("metrics.face_api", assets_root(c, "metrics.assets") + "/" + kFaceApiManifest);
}

std::shared_ptr<cluster::Communicator> metrics_communicator() {
  return cluster::make_communicator(cluster::discover_world(), "auto", c10::Device("cpu"));
}

// --device: cpu, cuda (this rank's GPU of the node: ranks on a node share its GPUs) or cuda:i.
// --out: the JSON result file, checked before any work (a folder there failed only at the final rename).
std::string json_out_path(const Config& c) {
  const std::string out = c.get_string("metrics.out", "");
  std::error_code ec;
  FACETEX_CHECK_USAGE(out.empty() || !std::filesystem::is_directory(out, ec),
                      "--out {} is a folder; give the JSON file's name", out);
  return out;
}

std::string rank_device(const Config& c) {
  const std::string device = device_choice(c, "metrics.device", /*indexed=*/true);
  if (device != "cuda") return device;
  return fmt::format("cuda:{}", cluster::local_device_index(cluster::discover_world(), static_cast<int>(at::getNumGPUs())));
}

void add_feature_options(Cli& cli, CLI::App* cmd) {
  cli.required(cmd, "--real", "metrics.real", "Real images: a folder of PNG/JPEG files or a packed dataset folder");
  cli.required(cmd, "--fake", "metrics.fake", "Generated images: a folder of PNG/JPEG files or a packed dataset folder");
  cli.option(cmd, "--inception", "metrics.inception",
             "NVIDIA's inception-2015-12-05.pt (TorchScript); without it dlib face descriptors are used and the "
             "numbers are labelled FID_dlib / KID_dlib (an offline stand-in, not comparable with published FID)");
  cli.option(cmd, "--face-api", "metrics.face_api", "face-api's face_recognition_model-weights_manifest.json",
             std::string("ASSETS/") + kFaceApiManifest);
  cli.option(cmd, "--assets", "metrics.assets", kAssetsHelp, "$FACETEX_ASSETS or <source>/assets");
  cli.option(cmd, "--max-items", "metrics.max_items", "Use at most N images of each set (0 = all)", "0");
  cli.option(cmd, "--batch", "metrics.batch", "Images per feature batch", "32");
  cli.option(cmd, "--device", "metrics.device", "cpu | cuda (each rank its GPU of the node) | cuda:i", "cpu");
  cli.option(cmd, "--out", "metrics.out", "Also write the result as JSON to this file (rank 0)");
  cli.option(cmd, "--cache", "metrics.cache",
             "Folder that keeps the --real set's features between runs, keyed by its images (files' paths, sizes and "
             "times, or a dataset's manifest), the extractor's weights and --max-items; 'off' disables",
             "$FACETEX_CACHE_DIR, else $XDG_CACHE_HOME/facetex, else ~/.cache/facetex");
}

struct FeatureSets {
  at::Tensor real, fake;
  train::metrics::CachedFeatures real_cache;
  std::unique_ptr<train::metrics::FeatureExtractor> extractor;
  std::shared_ptr<cluster::Communicator> comm;
};

FeatureSets gather(const Config& c) {
  FeatureSets s;
  json_out_path(c);  // a bad --out is named before the features are extracted
  const c10::Device device(rank_device(c));
  const std::string inception = c.get_string("metrics.inception", "");
  s.extractor = inception.empty()
                    ? train::metrics::make_dlib_extractor(face_api_manifest(c), device)
                    : train::metrics::make_inception_extractor(inception, device);
  s.comm = metrics_communicator();
  const int64_t max_items = c.get_int("metrics.max_items", 0);
  FACETEX_CHECK_USAGE(max_items >= 0, "--max-items must be >= 0 (0 = all), got {}", max_items);
  const int batch = static_cast<int>(c.get_int("metrics.batch", 32));
  const train::metrics::ImageSource real(c.require_string("metrics.real")), fake(c.require_string("metrics.fake"));
  const std::string cache = c.get_string("metrics.cache", "");
  const std::filesystem::path cache_dir =
      cache == "off"  ? std::filesystem::path()
      : cache.empty() ? train::metrics::default_feature_cache_dir()
                      : std::filesystem::path(cache);
  s.real_cache = train::metrics::gather_features_cached(real, *s.extractor, s.comm.get(), max_items, batch, cache_dir);
  s.real = s.real_cache.features;
  s.fake = train::metrics::gather_features(fake, *s.extractor, s.comm.get(), max_items, batch);
  return s;
}

void report(const Config& c, const FeatureSets& s, const std::string& label, double value) {
  if (s.comm->rank() != 0) return;
  std::printf("%s %.6f (real %lld%s, fake %lld, %s features %lld-D, ranks %d)\n", label.c_str(), value,
              static_cast<long long>(s.real.size(0)), s.real_cache.hit ? " from the feature cache" : "",
              static_cast<long long>(s.fake.size(0)), s.extractor->name().c_str(),
              static_cast<long long>(s.extractor->dim()), s.comm->size());
  const std::string out = json_out_path(c);
  if (!out.empty()) {
    nlohmann::json j{{"metric", label},
                     {"value", value},
                     {"real_items", s.real.size(0)},
                     {"fake_items", s.fake.size(0)},
                     {"features", s.extractor->name()},
                     {"real_features_cache", s.real_cache.file.empty() ? nlohmann::json(nullptr)
                                                                       : nlohmann::json(s.real_cache.file.string())},
                     {"real_features_cached", s.real_cache.hit},
                     {"ranks", s.comm->size()}};
    write_file_atomic(out, j.dump(2) + "\n");
  }
}

}  // namespace

void add_metrics_commands(Cli& cli) {
  CLI::App* metrics = cli.app().add_subcommand("metrics", "Quality metrics of trained networks");
  metrics->require_subcommand(1);
  CLI::App* synth = metrics->add_subcommand(
      "synth", "Synthetic world: distance of generated to ground-truth textures, at the start and now");
  cli.required(synth, "--run", "metrics.run", "Run folder of a training on a synthetic world");
  cli.on_run(synth, [](const Config& c) {
    const train::SynthReport r = train::evaluate_synth_run(c.require_string("metrics.run"));
    std::printf("init: kid %.5f colour %.5f\n", r.init.kid, r.init.colour);
    std::printf("now (kimg %.3f): kid %.5f colour %.5f\n", r.now_kimg, r.now.kid, r.now.colour);
    if (!r.plot.empty()) std::printf("plot: %s\n", r.plot.c_str());
    std::printf("synth_distance init=%.5f now=%.5f\n", r.init.total(), r.now.total());
    return 0;
  });

  CLI::App* fid = metrics->add_subcommand("fid", "Fréchet distance of real and generated image features");
  add_feature_options(cli, fid);
  cli.on_run(fid, [](const Config& c) {
    const FeatureSets s = gather(c);
    report(c, s, s.extractor->fid_label(), train::metrics::fid(s.real, s.fake));
    return 0;
  });

  CLI::App* kid = metrics->add_subcommand("kid", "Kernel distance (unbiased MMD^2, cubic kernel) of image features");
  add_feature_options(cli, kid);
  cli.option(kid, "--subsets", "metrics.kid_subsets", "Random subsets averaged", "100");
  cli.option(kid, "--subset-size", "metrics.kid_subset_size", "Largest subset", "1000");
  cli.on_run(kid, [](const Config& c) {
    const FeatureSets s = gather(c);
    train::metrics::KidOptions o;
    o.num_subsets = static_cast<int>(c.get_int("metrics.kid_subsets", 100));
    o.max_subset_size = c.get_int("metrics.kid_subset_size", 1000);
    report(c, s, s.extractor->kid_label(), train::metrics::kid(s.real, s.fake, o));
    return 0;
  });

  CLI::App* recon = metrics->add_subcommand(
      "recon", "Reconstruction metrics: masked SSIM, PSNR, L1 and identity cosine (dlib ResNet) per item and mean");
  cli.option(recon, "--outputs", "metrics.outputs",
             "Reconstruction output folder: sub-folders with target[_crop].png, proj_composed[_crop].png, "
             "mask[_crop].png");
  cli.option(recon, "--pred", "metrics.pred", "Folder of reconstructed images (instead of --outputs)");
  cli.option(recon, "--target", "metrics.target", "Folder of target images, same relative paths as --pred");
  cli.option(recon, "--mask", "metrics.mask", "Folder of masks (first channel, /255), same relative paths");
  cli.option(recon, "--face-api", "metrics.face_api", "face-api's face_recognition_model-weights_manifest.json "
             "(identity column; 'none' to skip)", std::string("ASSETS/") + kFaceApiManifest);
  cli.option(recon, "--lightcnn", "metrics.lightcnn", "LightCNN-29v2 weights converted by `facetex convert "
             "torch-state-dict --key state_dict --prefix-strip module.` (identity column id_cos_lightcnn, as the paper)");
  cli.option(recon, "--landmarks", "metrics.landmarks", "dlib 68-point shape predictor for the identity chips "
             "('none': whole images resized)", std::string("ASSETS/") + kShapePredictorInAssets);
  cli.option(recon, "--assets", "metrics.assets", kAssetsHelp, "$FACETEX_ASSETS or <source>/assets");
  cli.option(recon, "--device", "metrics.device", "cpu | cuda (each rank its GPU of the node) | cuda:i", "cpu");
  cli.option(recon, "--out", "metrics.out", "Also write per-item scores and means as JSON to this file (rank 0)");
  cli.on_run(recon, [](const Config& c) {
    json_out_path(c);  // named before any work
    std::vector<train::metrics::ReconItem> items;
    const std::string outputs = c.get_string("metrics.outputs", "");
    if (!outputs.empty()) {
      FACETEX_CHECK_USAGE(!c.has("metrics.pred") && !c.has("metrics.target") && !c.has("metrics.mask"),
                          "metrics recon takes --outputs DIR or --pred/--target/--mask, not both");
      items = train::metrics::find_recon_outputs(outputs);
    } else {
      FACETEX_CHECK_USAGE(c.has("metrics.pred") && c.has("metrics.target") && c.has("metrics.mask"),
                          "metrics recon needs --outputs DIR or all of --pred, --target and --mask");
      items = train::metrics::match_recon_folders(c.require_string("metrics.pred"), c.require_string("metrics.target"),
                                                  c.require_string("metrics.mask"));
    }
    train::metrics::ReconEvalOptions o;
    const std::string face_api = face_api_manifest(c);
    const std::string landmarks =
        c.get_string("metrics.landmarks", assets_root(c, "metrics.assets") + "/" + kShapePredictorInAssets);
    if (face_api != "none") o.face_api_manifest = face_api;
    o.light_cnn = c.get_string("metrics.lightcnn", "");
    if (landmarks != "none") o.shape_predictor = landmarks;
    o.device = rank_device(c);
    const auto comm = metrics_communicator();
    const train::metrics::ReconEvalReport r = train::metrics::evaluate_recon(items, o, comm.get());
    if (comm->rank() != 0) return 0;
    const bool id = !o.face_api_manifest.empty() || !o.light_cnn.empty();
    std::printf("items %zu  SSIM %.6f  PSNR %.6f  L1 %.6f  %s %s\n", r.items.size(), r.ssim, r.psnr, r.l1,
                r.id_label.c_str(), id ? fmt::format("{:.6f}", r.id_cos).c_str() : "n/a");
    const std::string out = json_out_path(c);
    if (!out.empty()) {
      nlohmann::json j{{"items", nlohmann::json::array()}, {"ssim", r.ssim}, {"psnr", r.psnr}, {"l1", r.l1},
                       {"ranks", comm->size()}};
      if (id) j[r.id_label] = r.id_cos;
      for (const auto& s : r.items) {
        nlohmann::json e{{"name", s.name}, {"ssim", s.ssim}, {"psnr", s.psnr},  // identical images: inf, JSON null
                         {"l1", s.l1}};
        if (id) {
          e[r.id_label] = s.id_cos;
          e["face_found"] = s.face_found;
        }
        j["items"].push_back(e);
      }
      write_file_atomic(out, j.dump(2) + "\n");
    }
    return 0;
  });
}

}  // namespace facetex::app
