#include "train/annotate.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/folder_lock.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/version.h"
#include "core/work_pool.h"
#include "data/image_codec.h"
#include "data/shard_writer.h"
#include "models/face3d/canonical_mesh.h"
#include "models/face3d/canonical_model.h"
#include "models/aux/recon_net.h"
#include "models/face3d/geometry.h"
#include "models/face3d/pos_align.h"
#include "monitoring/metrics.h"
#include "train/shards_face_model.h"
#include "train/synthetic_world.h"

namespace fs = std::filesystem;

namespace facetex::train {
namespace f3 = models::face3d;
namespace aux = models::aux;
namespace {

// A tensor's shape and bytes into the digest of what an output shard was made from.
void add_tensor(Fnv64& f, const at::Tensor& t) {
  if (!t.defined()) return f.add("undef");
  const at::Tensor c = t.to(at::kCPU).contiguous();
  f.add(fmt::format("{}", c.sizes()));
  f.bytes(c.data_ptr(), c.numel() * c.element_size());
}

double interocular(const aux::Landmarks68& p) { return std::hypot(p[45][0] - p[36][0], p[45][1] - p[36][1]); }

// ---- landmark sources ----------------------------------------------------------------------------------------

class DlibSource : public LandmarkSource {
 public:
  DlibSource(const fs::path& predictor, aux::DetectorOptions o) : landmarker_(predictor, o) {}
  std::optional<aux::Landmarks68> landmarks(const LandmarkQuery& q) override {
    const auto faces = landmarker_.detect(q.rgb, q.height, q.width);
    if (faces.empty()) return std::nullopt;
    return faces.front().landmarks;  // the largest
  }

 private:
  aux::DlibLandmarker landmarker_;
};

class AnnotationSource : public LandmarkSource {
 public:
  AnnotationSource(std::shared_ptr<const f3::MorphableModel> model, f3::CameraOptions camera)
      : model_(std::move(model)), camera_(camera), layout_(f3::CoeffLayout::for_model(*model_)) {}
  std::optional<aux::Landmarks68> landmarks(const LandmarkQuery& q) override {
    FACETEX_CHECK_USAGE(q.shard != nullptr, "{}: landmarks from annotations need a packed dataset as input, not "
                        "image files", q.key);
    const data::ShardReader& s = *q.shard;
    FACETEX_CHECK_DATA(s.has_annotation("coeffs") && s.has_annotation("crop"),
                       "{}: --landmarks annotations needs the input's /coeffs and /crop", s.path());
    FACETEX_CHECK_DATA(s.annotation_row_size("coeffs") == layout_.total(),
                       "{}: /coeffs has {} values per row, the face model needs {}", s.path(),
                       s.annotation_row_size("coeffs"), layout_.total());
    if (s.has_annotation("valid")) {
      uint8_t valid = 0;
      s.read_annotation("valid", q.row, &valid);
      if (!valid) return std::nullopt;
    }
    at::Tensor coeffs = at::empty({1, layout_.total()}, at::kFloat), crop = at::empty({1, 3}, at::kFloat);
    s.read_annotation("coeffs", q.row, coeffs.data_ptr<float>());
    s.read_annotation("crop", q.row, crop.data_ptr<float>());
    const at::Tensor p = f3::project_keypoints(*model_, coeffs, crop, camera_).contiguous();
    aux::Landmarks68 out{};
    std::memcpy(out.data(), p.data_ptr<float>(), sizeof(float) * 136);
    return out;
  }

 private:
  std::shared_ptr<const f3::MorphableModel> model_;
  f3::CameraOptions camera_;
  f3::CoeffLayout layout_;
};

// ---- per-shard work ------------------------------------------------------------------------------------------

struct RowResult {
  bool found = false;
  aux::Landmarks68 lm{};
  std::string error;  // a bad row (DataError): fail or skip per --on-corrupt
};

struct ShardStats {
  int64_t rows = 0, faces = 0;
  double residual_px_sum = 0, residual_iod_sum = 0;
};

std::string shard_digest(const AnnotateOptions& o, const data::ShardEntry& e, const std::string& model_digest) {
  Fnv64 f;
  f.add(fmt::format("annotate v1 file={} count={} bytes={} crc={:08x} begin={} end={}", e.file, e.count, e.bytes,
                    e.rows_crc32, e.input_begin, e.input_end));
  f.add(model_digest);
  f.add(o.landmarks.name);
  if (!o.recon_weights.empty()) f.add("recon=" + file_stamp(o.recon_weights));
  f.add(fit_settings_text(o.fit) + fmt::format(" corrupt={} deflate={}", int(o.on_corrupt), o.deflate));
  return f.hex();
}

// Statistics of a finished output shard (for the summary of a re-run that keeps it).
ShardStats stats_of(const data::ShardReader& r) {
  ShardStats s;
  s.rows = r.count();
  for (int64_t i = 0; i < r.count(); ++i) {
    uint8_t valid = 0;
    r.read_annotation("valid", i, &valid);
    if (!valid) continue;
    float residual = 0;
    std::array<float, 136> lm{};
    r.read_annotation("fit_residual", i, &residual);
    r.read_annotation("lm68", i, lm.data());
    aux::Landmarks68 p{};
    std::memcpy(p.data(), lm.data(), sizeof(lm));
    ++s.faces;
    s.residual_px_sum += residual;
    s.residual_iod_sum += residual / std::max(1e-6, interocular(p));
  }
  return s;
}

std::optional<data::ShardSummary> reusable(const fs::path& path, const std::string& digest) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    data::ShardReader reader(path);
    if (reader.header().source_digest != digest || !reader.has_annotation("fit_residual")) return std::nullopt;
    return data::summarize_shard(path);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::vector<float> floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

// ReconNet on the protocol's crops (spec §3.5-3.6): POS from the five points, bicubic resize + 224 crop, the crop
// cast to uint8 (clamped first: spec §11's fix of the unclamped cast) / 255 -> 257 coefficients. The result has the
// landmark fit's shape so that the rest of the job does not care which front end ran.
f3::LandmarkFit recon_geometry(const aux::ReconNet& net, const f3::MorphableModel& model, const at::Tensor& images,
                               const at::Tensor& lm68, const at::Tensor& has_face, const f3::CameraOptions& camera) {
  f3::LandmarkFit out;
  out.lm5 = f3::landmarks68_to_5(lm68);
  const f3::AlignedCrop a =
      f3::align_faces(images, out.lm5, f3::model_reference_lm3d(model).to(at::kCPU), has_face, camera.crop);
  out.valid = a.valid.to(at::kCPU);
  out.crop = a.bbox.to(at::kCPU);
  at::Tensor coeffs;
  {
    at::NoGradGuard no_grad;
    coeffs = net.forward(a.crop.clamp(0, 255).to(at::kByte).to(at::kFloat) / 255).to(at::kCPU, at::kFloat);
  }
  out.coeffs = at::where(out.valid.unsqueeze(1), coeffs, at::zeros({1}, at::kFloat)).contiguous();
  out.projected = f3::project_keypoints(model, out.coeffs, out.crop, camera);
  const at::Tensor d = (out.projected - lm68).narrow(1, 17, 51).norm(2, {2}).mean(1);
  out.residual_px = at::where(out.valid, d, at::full({1}, -1.0f));
  return out;
}

namespace {

class Annotator {
 public:
  explicit Annotator(const AnnotateOptions& o)
      : o_(o), threads_(o.threads > 0 ? o.threads : hardware_workers()) {
    if (!o.recon_weights.empty()) recon_ = aux::load_recon_net(o.recon_weights);
    sources_.push_back(o_.landmarks.make());  // one now, so a bad landmark model fails before anything is written
  }

  // Annotates one input shard into `out_path`; appends skipped rows to `skipped`.
  data::ShardSummary write_shard(const data::ShardReader& in, const data::ShardEntry& entry, const fs::path& out_path,
                                 const std::string& digest, std::vector<data::SkippedInput>& skipped,
                                 ShardStats& stats, Progress& progress) {
    const int64_t n = in.count();
    const bool raw = in.header().storage == data::Storage::kRaw;
    const int res = static_cast<int>(in.header().resolution);
    std::vector<RowResult> rows(static_cast<size_t>(n));

    const auto t_start = std::chrono::steady_clock::now();
    // 1. Landmarks, rows spread over the workers (one source each, created once per run).
    while (static_cast<int>(sources_.size()) < threads_) sources_.push_back(o_.landmarks.make());
    // A bad row stops the others with --on-corrupt=fail (the first in row order is reported below); anything else
    // (out of memory, a broken model) escapes and stops the run.
    std::atomic<bool> stop{false};
    std::vector<std::string> buffers(static_cast<size_t>(threads_));
    for_each_index(n, threads_, [&](int64_t i, int t) {
      if (stop) return;
      RowResult& r = rows[static_cast<size_t>(i)];
      std::string& bytes = buffers[static_cast<size_t>(t)];
      try {
        in.read_row(i, bytes);  // CRC-checked: DataError naming the file and row
        data::Image img;
        const uint8_t* rgb = nullptr;
        if (raw) {
          rgb = reinterpret_cast<const uint8_t*>(bytes.data());
        } else {
          img = data::decode_image(bytes, in.describe_row(i));
          FACETEX_CHECK_DATA(img.height == res && img.width == res, "{}: decodes to {}x{}, the shard is {}x{}",
                             in.describe_row(i), img.width, img.height, res, res);
          rgb = img.rgb.data();
        }
        LandmarkQuery q{rgb, res, res, &in, i, in.key(i)};
        const auto lm = sources_[static_cast<size_t>(t)]->landmarks(q);
        r.found = lm.has_value();
        if (lm) r.lm = *lm;
      } catch (const DataError& e) {
        r.error = e.what();
        if (o_.on_corrupt == data::OnCorrupt::kFail) stop = true;
      }
      progress.advance();
    });
    for (int64_t i = 0; i < n; ++i) {  // the first bad row in row order
      const RowResult& r = rows[static_cast<size_t>(i)];
      if (r.error.empty()) continue;
      if (o_.on_corrupt == data::OnCorrupt::kFail) throw DataError(r.error);
    }

    // 2. Geometry: batched fits over the good rows.
    std::vector<int64_t> kept;
    for (int64_t i = 0; i < n; ++i) {
      const RowResult& r = rows[static_cast<size_t>(i)];
      if (!r.error.empty()) {
        log::get("data").warn("skipping row (--on-corrupt=skip): {}", r.error);
        skipped.push_back({entry.input_begin + i, in.key(i), r.error});
        metrics::counter("facetex_annotate_skipped_rows_total", "Rows left out by data annotate (--on-corrupt=skip)")
            .inc();
        continue;
      }
      kept.push_back(i);
    }
    const auto t_fit = std::chrono::steady_clock::now();
    const double detect_s = std::chrono::duration<double>(t_fit - t_start).count();
    const int64_t m = static_cast<int64_t>(kept.size());
    const int64_t k = f3::CoeffLayout::for_model(o_.model).total();
    at::Tensor coeffs = at::zeros({m, k}, at::kFloat), crops = at::empty({m, 3}, at::kFloat);
    at::Tensor valid = at::zeros({m}, at::kByte), lm68 = at::full({m, 68, 2}, -1.0f), lm5 = at::full({m, 5, 2}, -1.0f);
    at::Tensor residual = at::full({m}, -1.0f);
    for (int64_t b0 = 0; b0 < m; b0 += o_.fit_batch) {
      const int64_t b = std::min<int64_t>(o_.fit_batch, m - b0);
      at::Tensor lm = at::zeros({b, 68, 2}, at::kFloat), face = at::zeros({b}, at::kBool);
      for (int64_t j = 0; j < b; ++j) {
        const RowResult& r = rows[static_cast<size_t>(kept[static_cast<size_t>(b0 + j)])];
        if (!r.found) continue;
        face[j] = true;
        std::memcpy(lm[j].data_ptr<float>(), r.lm.data(), sizeof(float) * 136);
      }
      f3::LandmarkFit fit;
      if (recon_) {
        at::Tensor images = at::zeros({b, 3, res, res}, at::kFloat);
        std::string bytes;
        for (int64_t j = 0; j < b; ++j) {
          if (!face[j].item<bool>()) continue;
          const int64_t row = kept[static_cast<size_t>(b0 + j)];
          in.read_row(row, bytes);
          at::Tensor hwc;
          data::Image img;
          if (raw) {
            hwc = at::from_blob(bytes.data(), {res, res, 3}, at::kByte);
          } else {
            img = data::decode_image(bytes, in.describe_row(row));
            hwc = at::from_blob(img.rgb.data(), {res, res, 3}, at::kByte);
          }
          images[j].copy_(hwc.permute({2, 0, 1}).to(at::kFloat));
        }
        fit = recon_geometry(*recon_, o_.model, images, lm, face, o_.fit.camera);
      } else {
        fit = f3::fit_landmarks(o_.model, lm, face, res, res, o_.fit);
      }
      coeffs.narrow(0, b0, b).copy_(fit.coeffs);
      crops.narrow(0, b0, b).copy_(fit.crop);
      valid.narrow(0, b0, b).copy_(fit.valid.to(at::kByte));
      residual.narrow(0, b0, b).copy_(fit.residual_px);
      const at::Tensor has = face.view({b, 1, 1});
      lm68.narrow(0, b0, b).copy_(at::where(has, lm, at::full({1}, -1.0f)));
      lm5.narrow(0, b0, b).copy_(at::where(has, fit.lm5, at::full({1}, -1.0f)));
      auto va = fit.valid.accessor<bool, 1>();
      auto ra = fit.residual_px.accessor<float, 1>();
      for (int64_t j = 0; j < b; ++j) {
        if (!va[j]) continue;
        ++stats.faces;
        stats.residual_px_sum += ra[j];
        stats.residual_iod_sum +=
            ra[j] / std::max(1e-6, interocular(rows[static_cast<size_t>(kept[static_cast<size_t>(b0 + j)])].lm));
      }
    }
    stats.rows += m;
    log::get("data").debug("{}: {} rows, landmarks {:.2f} s, fit {:.2f} s", in.path(), n, detect_s,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - t_fit).count());

    // 3. The new shard: image bytes and CRCs as they were, the annotations, extra per-row data passed through.
    data::ShardHeader header;
    header.storage = in.header().storage;
    header.resolution = in.header().resolution;
    header.input_begin = in.header().input_begin;
    header.source_digest = digest;
    header.created_by = fmt::format("facetex {} data annotate ({}; landmarks {})", FACETEX_VERSION, o_.model_name,
                                    o_.landmarks.name);
    data::ShardWriter writer(out_path, header, raw ? o_.deflate : 0);
    std::string bytes;
    for (int64_t i : kept) {
      in.read_row(i, bytes);
      writer.append(in.key(i), bytes, in.stored_crc(i));
    }
    const hsize_t hm = static_cast<hsize_t>(m);
    writer.set_annotation("coeffs", floats(coeffs), {hm, static_cast<hsize_t>(k)});
    writer.set_annotation("crop", floats(crops), {hm, 3});
    writer.set_annotation("valid", std::vector<uint8_t>(valid.data_ptr<uint8_t>(), valid.data_ptr<uint8_t>() + m), {hm});
    writer.set_annotation("lm68", floats(lm68), {hm, 68, 2});
    writer.set_annotation("lm5", floats(lm5), {hm, 5, 2});
    writer.set_annotation("fit_residual", floats(residual), {hm});
    // Per-row data of the input that annotate does not compute: the synthetic world's ground-truth textures
    // (/gt_texture [N, T, T, 3], read by training's synth metric).
    if (in.has_annotation("gt_texture")) {
      const int64_t per = in.annotation_row_size("gt_texture");
      const auto t = static_cast<hsize_t>(std::llround(std::sqrt(per / 3.0)));
      FACETEX_CHECK_DATA(int64_t(t * t * 3) == per, "{}: /gt_texture rows are not T x T x 3", in.path());
      std::vector<uint8_t> all(static_cast<size_t>(m * per));
      for (int64_t j = 0; j < m; ++j) in.read_annotation("gt_texture", kept[size_t(j)], all.data() + j * per);
      writer.set_annotation("gt_texture", std::move(all), {hm, t, t, 3});
    }
    return writer.commit();
  }

 private:
  const AnnotateOptions& o_;
  int threads_;
  std::vector<std::unique_ptr<LandmarkSource>> sources_;
  std::shared_ptr<aux::ReconNet> recon_;
};


}  // namespace

std::string face_model_digest(const std::string& name, const f3::MorphableModel& model) {
  Fnv64 f;
  f.add(name);
  for (const at::Tensor* t : {&model.mean_shape, &model.id_base, &model.exp_base, &model.keypoints}) add_tensor(f, *t);
  f.add(fmt::format("F={}", model.triangles.defined() ? model.triangles.size(0) : 0));
  return f.hex();
}

std::string fit_settings_text(const f3::LandmarkFitOptions& fit) {
  return fmt::format("it={} shape={} wid={} wexp={} jaw={} focal={} squeeze={} dist={} crop={} rescale={}",
                     fit.iterations, fit.fit_shape, fit.id_weight, fit.exp_weight, fit.use_jaw, fit.camera.focal,
                     fit.camera.x_squeeze, fit.camera.distance, fit.camera.crop.crop_size,
                     fit.camera.crop.rescale_factor);
}

LandmarkProvider dlib_landmark_provider(const fs::path& predictor, aux::DetectorOptions options) {
  FACETEX_CHECK_DATA(fs::is_regular_file(predictor),
                     "{}: dlib's shape predictor is missing (scripts/fetch_assets.sh installs it)", predictor.string());
  LandmarkProvider p;
  p.name = fmt::format("dlib68 upsample={} max_side={} adjust={}", options.upsample, options.max_upsampled_side,
                       options.adjust_threshold);
  p.make = [predictor, options]() -> std::unique_ptr<LandmarkSource> {
    return std::make_unique<DlibSource>(predictor, options);
  };
  return p;
}

LandmarkProvider annotation_landmark_provider(const f3::MorphableModel& model, const f3::CameraOptions& camera) {
  auto shared = std::make_shared<const f3::MorphableModel>(model);
  LandmarkProvider p;
  p.name = "annotations (projected /coeffs + /crop of the input)";
  p.needs_annotated_shards = true;
  p.make = [shared, camera]() -> std::unique_ptr<LandmarkSource> {
    return std::make_unique<AnnotationSource>(shared, camera);
  };
  return p;
}

LandmarkProvider landmark_provider_choice(const std::string& choice, const f3::MorphableModel& model,
                                          const fs::path& predictor, models::aux::DetectorOptions detector) {
  FACETEX_CHECK_USAGE(choice == "dlib" || choice == "annotations", "--landmarks must be dlib or annotations, got '{}'",
                      choice);
  return choice == "dlib" ? dlib_landmark_provider(predictor, detector) : annotation_landmark_provider(model);
}

ModelChoice load_model_choice(const std::string& spec, uint64_t seed, int grid, const fs::path& assets) {
  ModelChoice c;
  if (spec == "synthetic") {
    f3::SyntheticModelOptions mo;
    mo.seed = seed;
    mo.grid = grid;
    c.model = f3::make_synthetic_model(mo);
    c.name = fmt::format("synthetic seed {} grid {}", seed, grid);
  } else if (spec == "canonical") {
    const fs::path mesh = assets / "mediapipe" / "geometry_pipeline_metadata_landmarks.binarypb";
    const fs::path map = assets / "human" / "facemeshcoords.ts";
    for (const fs::path& p : {mesh, map}) {
      FACETEX_CHECK_DATA(fs::is_regular_file(p), "{}: missing (scripts/fetch_assets.sh installs the canonical mesh)",
                         p.string());
    }
    c.model = f3::canonical_morphable_model(f3::load_canonical_mesh(mesh), f3::load_dlib68_to_mesh(map));
    c.name = "canonical (MediaPipe face mesh, dm)";
  } else {
    const auto [mat, uv] = f3::split_model_files(spec, "--model (synthetic, canonical or MAT:UV)");
    c.model = f3::load_morphable_model(mat, uv);
    c.name = spec;
  }
  return c;
}

std::string auto_model_spec(const fs::path& shards) {
  const auto recorded = shards_face_model(shards);
  return recorded ? recorded->mat.string() + ":" + recorded->uv.string() : std::string("canonical");
}

AnnotateResult annotate_shards(const AnnotateOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto& log = log::get("data");
  if (!o.recon_weights.empty()) {
    const f3::CoeffLayout l = f3::CoeffLayout::for_model(o.model);
    FACETEX_CHECK_USAGE(l.id == 80 && l.exp == 64 && l.tex == 80,
                        "--recon-weights: ReconNet outputs the 257 BFM coefficients (80 identity, 64 expression, 80 "
                        "albedo); the face model '{}' has {}/{}/{} — use a BFM-layout model (MAT:UV or synthetic)",
                        o.model_name, l.id, l.exp, l.tex);
    FACETEX_CHECK_DATA(fs::is_regular_file(o.recon_weights), "{}: ReconNet weight file not found",
                       o.recon_weights.string());
  }
  FACETEX_CHECK_USAGE(o.fit_batch >= 1, "fit batch must be >= 1");
  FACETEX_CHECK_USAGE(o.deflate >= 0 && o.deflate <= 9, "--deflate must be 0..9");
  FACETEX_CHECK_USAGE(static_cast<bool>(o.landmarks.make), "annotate: no landmark source");
  FACETEX_CHECK_USAGE(o.model.keypoints.defined() && o.model.keypoints.numel() == 68,
                      "annotate: the face model needs 68 keypoints");
  FACETEX_CHECK_DATA(fs::is_directory(o.shards), "{}: no such dataset folder", o.shards.string());
  const fs::path in_manifest_path = o.shards / data::kManifestName;
  FACETEX_CHECK_DATA(fs::is_regular_file(in_manifest_path),
                     "{}: missing (not a packed dataset, or a --part pack whose parts are not merged yet: run "
                     "facetex data merge-manifest)",
                     in_manifest_path.string());
  const data::Manifest in = data::read_manifest(in_manifest_path);
  std::error_code ec;
  FACETEX_CHECK_USAGE(fs::weakly_canonical(o.shards, ec) != fs::weakly_canonical(o.out, ec),
                      "--out must differ from --shards");
  FACETEX_CHECK_USAGE(!fs::exists(o.out, ec) || fs::is_directory(o.out, ec), "--out {}: not a folder", o.out.string());

  // The landmark source and ReconNet load before anything is written or unlisted: a job that cannot start leaves
  // --out as it was.
  Annotator annotator(o);
  fs::create_directories(o.out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot create output folder: {}", o.out.string(), ec.message());
  // Held to the end: a second annotate of the same part into this folder would replace this one's shards.
  const std::string manifest_name =
      o.part.whole() ? std::string(data::kManifestName) : data::part_manifest_name(o.part);
  const FolderLock lock(o.out, manifest_name, fmt::format("facetex data annotate ({})", manifest_name));

  // What this part's shards would become, before anything is written: a finished dataset in --out that these
  // settings would change is refused (or, with --overwrite, unlisted first).
  const Range mine = part_range(static_cast<int64_t>(in.shards.size()), o.part);
  const std::string mdigest = face_model_digest(o.model_name, o.model);
  std::vector<std::string> digests;
  std::vector<std::optional<data::ShardSummary>> existing;
  bool rewrites = false;
  for (int64_t s = mine.begin; s < mine.end; ++s) {
    const data::ShardEntry& entry = in.shards[static_cast<size_t>(s)];
    digests.push_back(shard_digest(o, entry, mdigest));
    existing.push_back(reusable(o.out / entry.file, digests.back()));
    rewrites |= !existing.back() && fs::exists(o.out / entry.file, ec);
  }
  const fs::path part_manifest = o.out / manifest_name;
  data::unlist_before_rewrite(o.out, part_manifest, rewrites, o.overwrite,
                              "annotated dataset made with other settings (model, landmarks or fit)");

  // The face model the coefficients belong to, next to the shards (training's model.face_model_mat / _uv).
  f3::save_morphable_model(o.model, o.out / "model.mat", o.out / "uv.npy");
  const f3::CoeffLayout layout = f3::CoeffLayout::for_model(o.model);
  const nlohmann::json info = {
      {"format", "facetex-annotate"},
      {"version", 1},
      {"model", o.model_name},
      {"face_model_mat", "model.mat"},
      {"face_model_uv", "uv.npy"},
      {"coeff_layout",
       {{"id", layout.id}, {"exp", layout.exp}, {"tex", layout.tex}, {"angles", 3}, {"light", 27}, {"trans", 3}}},
      {"landmarks", o.landmarks.name},
      {"coefficients", o.recon_weights.empty() ? "landmark fit" : "ReconNet " + o.recon_weights.string()},
      {"created_by", fmt::format("facetex {} data annotate", FACETEX_VERSION)}};
  write_file_atomic(o.out / kAnnotateRecordName, info.dump(2) + "\n");

  int64_t my_rows = 0;
  for (int64_t s = mine.begin; s < mine.end; ++s) my_rows += in.shards[static_cast<size_t>(s)].count;
  log.info("annotating {} rows in shards {}..{} of {} from {} ({} model, {} coefficients; landmarks: {}){}", my_rows,
           mine.begin, mine.end - 1, in.shards.size(), o.shards.string(), o.model_name, layout.total(),
           o.landmarks.name, o.part.whole() ? "" : fmt::format(", part {}", o.part.str()));

  AnnotateResult result;
  data::Manifest& m = result.manifest;
  m.resolution = in.resolution;
  m.channels = in.channels;
  m.storage = in.storage;
  m.shard_size = in.shard_size;
  m.total_inputs = in.total_inputs;
  m.source = o.shards.string();
  m.created_by = fmt::format("facetex {} data annotate", FACETEX_VERSION);
  if (!o.part.whole()) m.part = o.part;
  ShardStats total;
  Progress progress("annotate", my_rows, "images", "data");
  for (int64_t s = mine.begin; s < mine.end; ++s) {
    const data::ShardEntry& entry = in.shards[static_cast<size_t>(s)];
    const fs::path in_path = o.shards / entry.file, out_path = o.out / entry.file;
    // The input's skipped inputs of this shard's range stay listed.
    for (const auto& x : in.skipped) {
      if (x.input >= entry.input_begin && x.input < entry.input_end) m.skipped.push_back(x);
    }
    const std::string& digest = digests[static_cast<size_t>(s - mine.begin)];
    data::ShardSummary summary;
    ShardStats stats;
    if (const auto& kept = existing[static_cast<size_t>(s - mine.begin)]) {
      log.info("{}: complete from an earlier run, keeping it", entry.file);
      summary = *kept;
      data::ShardReader done(out_path);
      stats = stats_of(done);
      if (summary.count < entry.count) {  // rows skipped by that run: list them again
        std::vector<std::string> keys;
        for (int64_t r = 0; r < done.count(); ++r) keys.push_back(done.key(r));
        try {
          data::ShardReader src(in_path);
          for (int64_t r = 0; r < src.count(); ++r) {
            if (std::find(keys.begin(), keys.end(), src.key(r)) == keys.end()) {
              m.skipped.push_back({entry.input_begin + r, src.key(r), "skipped in an earlier run"});
            }
          }
        } catch (const Error&) {
          m.skipped.push_back({entry.input_begin, entry.file, "rows skipped in an earlier run"});
        }
      }
      ++result.shards_reused;
      progress.advance(entry.count);
    } else {
      std::unique_ptr<data::ShardReader> reader;
      std::string problem;
      try {
        reader = std::make_unique<data::ShardReader>(in_path);
        problem = data::compare_with_manifest(*reader, entry, in);
      } catch (const DataError& e) {
        problem = e.what();
      }
      if (!problem.empty()) {
        FACETEX_CHECK_DATA(o.on_corrupt == data::OnCorrupt::kSkip, "{}", problem);
        log.warn("skipping shard (--on-corrupt=skip): {}", problem);
        m.skipped.push_back({entry.input_begin, entry.file, problem});
        result.skipped_rows += entry.count;
        progress.advance(entry.count);
        continue;
      }
      remove_partial_files(o.out, entry.file);
      std::vector<data::SkippedInput> skipped;
      summary = annotator.write_shard(*reader, entry, out_path, digest, skipped, stats, progress);
      result.skipped_rows += static_cast<int64_t>(skipped.size());
      m.skipped.insert(m.skipped.end(), skipped.begin(), skipped.end());
      result.rows_processed += entry.count;
      ++result.shards_written;
      metrics::counter("facetex_annotate_shards_total", "Shards written by data annotate").inc();
    }
    m.shards.push_back({summary.file, summary.count, summary.bytes, summary.rows_crc32, entry.input_begin,
                        entry.input_end});
    m.count += summary.count;
    total.rows += stats.rows;
    total.faces += stats.faces;
    total.residual_px_sum += stats.residual_px_sum;
    total.residual_iod_sum += stats.residual_iod_sum;
  }
  progress.finish();
  result.manifest_path = o.out / (o.part.whole() ? std::string(data::kManifestName) : data::part_manifest_name(o.part));
  if (o.part.whole()) data::require_some_rows(m, o.out);  // a part may be empty; its merge is checked
  data::write_manifest(result.manifest_path, m);
  if (o.part.whole()) data::remove_part_manifests(o.out);
  result.rows = total.rows;
  result.faces = total.faces;
  result.no_face = total.rows - total.faces;
  result.mean_residual_px = total.faces ? total.residual_px_sum / total.faces : 0;
  result.mean_residual_iod = total.faces ? total.residual_iod_sum / total.faces : 0;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  metrics::counter("facetex_annotate_rows_total", "Rows annotated by data annotate").inc(result.rows_processed);
  return result;
}

}  // namespace facetex::train
