#include "train/synthetic_world.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/folder_lock.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/version.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "core/crc32.h"
#include "models/face3d/geometry.h"
#include "train/face_renderer.h"
#include "train/job_settings.h"
#include "train/shards_face_model.h"

namespace fs = std::filesystem;

namespace facetex::train {
namespace f3 = models::face3d;
namespace {

at::Tensor uniform(at::IntArrayRef shape, double lo, double hi, at::Generator& gen) {
  return at::rand(shape, gen) * (hi - lo) + lo;
}

// Gaussian blobs on a [T, T] UV grid: centre (u, v) and sigmas in UV units.
at::Tensor blob(const at::Tensor& u, const at::Tensor& v, double cu, double cv, double su, double sv) {
  return at::exp(-0.5 * ((u - cu) / su).square() - 0.5 * ((v - cv) / sv).square());
}

// Mean UV of a range of 0-based keypoint indices.
std::pair<double, double> keypoint_uv(const f3::MorphableModel& m, int first, int last) {
  at::Tensor ids = m.keypoints.narrow(0, first, last - first + 1).to(at::kLong);
  at::Tensor uv = m.uv.index_select(0, ids).mean(0);
  return {uv[0].item<double>(), uv[1].item<double>()};
}

}  // namespace

at::Tensor sample_world_textures(const f3::MorphableModel& model, int64_t n, int T, at::Generator& gen) {
  // UV grid of the texture image: column x <-> u = x / (T-1); row y <-> v = 1 - y / (T-1) (v up).
  at::Tensor axis = at::linspace(0, 1, T);
  at::Tensor u = axis.view({1, T}).expand({T, T});
  at::Tensor v = (1 - axis).view({T, 1}).expand({T, T});
  const auto [eye_l_u, eye_l_v] = keypoint_uv(model, 36, 41);
  const auto [eye_r_u, eye_r_v] = keypoint_uv(model, 42, 47);
  const auto [brow_l_u, brow_l_v] = keypoint_uv(model, 17, 21);
  const auto [brow_r_u, brow_r_v] = keypoint_uv(model, 22, 26);
  const auto [mouth_u, mouth_v] = keypoint_uv(model, 48, 59);
  const at::Tensor eyes = blob(u, v, eye_l_u, eye_l_v, 0.03, 0.02) + blob(u, v, eye_r_u, eye_r_v, 0.03, 0.02);
  const at::Tensor brows = blob(u, v, brow_l_u, brow_l_v, 0.05, 0.012) + blob(u, v, brow_r_u, brow_r_v, 0.05, 0.012);
  const at::Tensor mouth = blob(u, v, mouth_u, mouth_v, 0.06, 0.02);

  // Per-sample parameters: skin tone (a shared lightness plus per-channel variation), vertical shading, feature
  // strengths and colours.
  at::Tensor lightness = at::randn({n, 1, 1, 1}, gen) * 0.08;
  at::Tensor skin = at::tensor({0.78f, 0.60f, 0.50f}).view({1, 3, 1, 1}) + lightness +
                    at::randn({n, 3, 1, 1}, gen) * at::tensor({0.04f, 0.03f, 0.03f}).view({1, 3, 1, 1});
  at::Tensor shading = uniform({n, 1, 1, 1}, -0.15, 0.15, gen) * (v - 0.5).view({1, 1, T, T});
  at::Tensor eye_colour = at::tensor({0.12f, 0.09f, 0.08f}).view({1, 3, 1, 1}) + uniform({n, 3, 1, 1}, 0.0, 0.12, gen);
  at::Tensor eye_strength = uniform({n, 1, 1, 1}, 0.6, 1.0, gen);
  at::Tensor brow_strength = uniform({n, 1, 1, 1}, 0.2, 0.7, gen);
  at::Tensor lip_colour = at::tensor({0.70f, 0.28f, 0.28f}).view({1, 3, 1, 1}) + at::randn({n, 3, 1, 1}, gen) * 0.04;
  at::Tensor lip_strength = uniform({n, 1, 1, 1}, 0.4, 0.9, gen);

  at::Tensor tex = skin + shading;
  const auto mix = [](const at::Tensor& base, const at::Tensor& colour, const at::Tensor& weight) {
    return base * (1 - weight) + colour * weight;
  };
  tex = mix(tex, eye_colour, (eyes.view({1, 1, T, T}) * eye_strength).clamp(0, 1));
  tex = mix(tex, tex * 0.35, (brows.view({1, 1, T, T}) * brow_strength).clamp(0, 1));
  tex = mix(tex, lip_colour, (mouth.view({1, 1, T, T}) * lip_strength).clamp(0, 1));
  tex = tex + at::randn({n, 3, T, T}, gen) * 0.01;
  return (tex.clamp(0, 1) * 2 - 1).contiguous();
}

at::Tensor sample_world_backgrounds(int64_t n, int R, at::Generator& gen) {
  at::Tensor axis = at::linspace(-1, 1, R);
  at::Tensor x = axis.view({1, 1, 1, R}), y = axis.view({1, 1, R, 1});
  at::Tensor angle = uniform({n, 1, 1, 1}, -3.14159, 3.14159, gen);
  at::Tensor ramp = (x * at::cos(angle) + y * at::sin(angle)) * 0.5 + 0.5;  // [n,1,R,R] in [0,1]
  at::Tensor c0 = at::rand({n, 3, 1, 1}, gen), c1 = at::rand({n, 3, 1, 1}, gen);
  at::Tensor bg = c0 * (1 - ramp) + c1 * ramp;
  for (int k = 0; k < 3; ++k) {
    at::Tensor cx = uniform({n, 1, 1, 1}, -1, 1, gen), cy = uniform({n, 1, 1, 1}, -1, 1, gen);
    at::Tensor r = uniform({n, 1, 1, 1}, 0.15, 0.5, gen);
    at::Tensor w = at::exp(-((x - cx).square() + (y - cy).square()) / (2 * r.square()));
    bg = bg * (1 - w) + at::rand({n, 3, 1, 1}, gen) * w;
  }
  bg = bg + at::randn({n, 3, R, R}, gen) * 0.02;
  return (bg.clamp(0, 1) * 2 - 1).contiguous();
}

at::Tensor sample_world_coeffs(const f3::MorphableModel& model, int64_t n, at::Generator& gen) {
  const f3::CoeffLayout layout = f3::CoeffLayout::for_model(model);
  f3::Coeffs c;
  // Small shape variation: the synthetic bases are random smooth fields, and unit coefficients on all of them
  // together would fold the surface (real 3DMM bases are far more structured).
  c.id = at::randn({n, layout.id}, gen) * 0.2;
  c.exp = at::randn({n, layout.exp}, gen) * 0.1;
  c.tex = at::zeros({n, layout.tex});
  c.angles = at::cat({uniform({n, 1}, -0.25, 0.25, gen), uniform({n, 1}, -0.6, 0.6, gen),
                      uniform({n, 1}, -0.15, 0.15, gen)}, 1);
  c.light = at::zeros({n, layout.light});
  c.trans = at::cat({uniform({n, 2}, -0.1, 0.1, gen), at::zeros({n, 1})}, 1);
  return f3::join_coeffs(c);
}

at::Tensor world_crop(int64_t n, int R) {
  // cx = left + (crop/2) / s' with s' = 102 / s: the principal point lands on the image centre when s' = 224 / R.
  const double s = 102.0 * R / 224.0;
  return at::tensor({0.0f, 0.0f, static_cast<float>(s)}).view({1, 3}).repeat({n, 1});
}

f3::MorphableModel load_world_model(const fs::path& dir) {
  return f3::load_morphable_model(dir / "model.mat", dir / "uv.npy");
}

SyntheticWorldSummary write_synthetic_world(const SyntheticWorldOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  FACETEX_CHECK_USAGE(o.count >= 1 && o.resolution >= 16 && o.texture_resolution >= 16 && o.shard_size >= 1,
                      "synth: count, shard size >= 1 and resolutions >= 16 required");
  nlohmann::json world = {{"format", "facetex-synthetic-world"}, {"version", 1}, {"count", o.count},
                          {"resolution", o.resolution}, {"texture_resolution", o.texture_resolution},
                          {"seed", o.seed}, {"model_grid", o.model_grid}, {"shard_size", o.shard_size},
                          {"created_by", std::string("facetex ") + FACETEX_VERSION + " data synth"}};
  std::error_code ec;
  FACETEX_CHECK_USAGE(!fs::exists(o.out, ec) || fs::is_directory(o.out, ec), "--out {}: not a folder", o.out.string());
  const fs::path record = o.out / kWorldRecordName, manifest_path = o.out / "shards" / data::kManifestName;
  fs::create_directories(o.out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot create output folder: {}", o.out.string(), ec.message());
  const FolderLock lock(o.out, kWorldRecordName, "facetex data synth");  // held while the world is written
  if (fs::exists(record, ec)) {
    nlohmann::json then;
    try {
      then = nlohmann::json::parse(read_file(record));
    } catch (const std::exception&) {
    }
    nlohmann::json now = world, was = then.is_object() ? then : nlohmann::json::object();
    now.erase("created_by");
    if (was.is_object() && !was.contains("shard_size")) now.erase("shard_size");  // not recorded before 0.1's stop 18
    const std::string difference = job_settings_difference(was, now);
    if (difference.empty() && fs::exists(manifest_path, ec)) {
      log::get("data").info("{}: a finished world with these settings is there; nothing to write", o.out.string());
      SyntheticWorldSummary kept;
      kept.kept = true;
      kept.images = o.count;
      return kept;
    }
    FACETEX_CHECK_USAGE(o.overwrite || !fs::exists(manifest_path, ec),
                        "{} holds a synthetic world made with other settings ({}); pass --overwrite to replace it, or "
                        "choose another --out",
                        o.out.string(), difference.empty() ? "settings not recorded" : difference);
    // Unlisted first, then its shards go: an interrupted rewrite never verifies as the old world.
    fs::remove(manifest_path, ec);
    for (const auto& e : fs::directory_iterator(o.out / "shards", ec)) {
      if (e.path().extension() == ".h5") fs::remove(e.path(), ec);
    }
  }
  fs::create_directories(o.out / "shards");
  f3::SyntheticModelOptions mo;
  mo.seed = o.seed;
  mo.grid = o.model_grid;
  f3::MorphableModel model = f3::make_synthetic_model(mo);
  f3::save_morphable_model(model, o.out / "model.mat", o.out / "uv.npy");
  FaceRenderer renderer(model);

  write_file_atomic(record, world.dump(2) + "\n");

  at::Generator gen = at::detail::createCPUGenerator(o.seed * 7919 + 1);
  data::Manifest manifest;
  manifest.resolution = o.resolution;
  manifest.storage = data::Storage::kRaw;
  manifest.shard_size = o.shard_size;
  manifest.total_inputs = o.count;
  manifest.source = "synthetic world";
  manifest.created_by = world["created_by"];
  Progress progress("synth", o.count, "images", "data");
  const int R = o.resolution, T = o.texture_resolution;
  for (int64_t begin = 0, shard = 0; begin < o.count; begin += o.shard_size, ++shard) {
    const int64_t n = std::min(o.shard_size, o.count - begin);
    at::Tensor textures = sample_world_textures(model, n, T, gen);
    at::Tensor backgrounds = sample_world_backgrounds(n, R, gen);
    at::Tensor coeffs = sample_world_coeffs(model, n, gen);
    at::Tensor crops = world_crop(n, R);
    at::Tensor images;
    {
      at::NoGradGuard no_grad;
      images = renderer.render_into(textures, coeffs, crops, backgrounds);
    }
    const auto to_u8_hwc = [](const at::Tensor& x) {
      return ((x + 1) * 127.5).round().clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
    };
    at::Tensor img_u8 = to_u8_hwc(images), tex_u8 = to_u8_hwc(textures);
    data::ShardHeader header;
    header.storage = data::Storage::kRaw;
    header.resolution = R;
    header.input_begin = begin;
    header.source_digest = fmt::format("synth-{}-{}", o.seed, begin);
    header.created_by = manifest.created_by;
    data::ShardWriter writer(o.out / "shards" / data::shard_file_name(shard), header, 0);
    const size_t row_bytes = size_t(R) * R * 3;
    for (int64_t i = 0; i < n; ++i) {
      const auto* p = img_u8[i].data_ptr<uint8_t>();
      std::string_view payload(reinterpret_cast<const char*>(p), row_bytes);
      writer.append(fmt::format("synth/{:06d}", begin + i), payload, crc32(p, row_bytes));
    }
    const auto as_floats = [](const at::Tensor& t) {
      at::Tensor c = t.to(at::kFloat).contiguous();
      return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    };
    writer.set_annotation("coeffs", as_floats(coeffs), {hsize_t(n), hsize_t(coeffs.size(1))});
    writer.set_annotation("crop", as_floats(crops), {hsize_t(n), 3});
    writer.set_annotation("valid", std::vector<uint8_t>(size_t(n), 1), {hsize_t(n)});
    writer.set_annotation("gt_texture",
                          std::vector<uint8_t>(tex_u8.data_ptr<uint8_t>(), tex_u8.data_ptr<uint8_t>() + tex_u8.numel()),
                          {hsize_t(n), hsize_t(T), hsize_t(T), 3});
    const data::ShardSummary s = writer.commit();
    manifest.shards.push_back({s.file, s.count, s.bytes, s.rows_crc32, begin, begin + n});
    manifest.count += s.count;
    progress.advance(n);
  }
  progress.finish();
  data::write_manifest(o.out / "shards" / data::kManifestName, manifest);
  SyntheticWorldSummary out;
  out.images = o.count;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace facetex::train
