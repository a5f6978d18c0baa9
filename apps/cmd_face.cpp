// `facetex face ...`: the real-photo front end — dlib detection + 68 landmarks, the canonical-mesh fit and the
// photo -> UV unwrap (models/aux/dlib_landmarks, models/face3d/photo_fit, models/face3d/uv_unwrap).
//   face fit   one photo -> landmarks.json, mesh.obj/.mtl/.png, render.png, uv.png, uv_mask.png
//   face eval  dlib's landmark ground-truth XML -> detection rate, NME, fit residual, UV coverage, contact sheet
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>

#include "apps/cli.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/version.h"
#include "data/image_codec.h"
#include "models/aux/dlib_landmarks.h"
#include "models/face3d/canonical_mesh.h"
#include "models/face3d/obj_export.h"
#include "models/face3d/photo_fit.h"
#include "models/face3d/uv_unwrap.h"

namespace fs = std::filesystem;
namespace f3d = facetex::models::face3d;
namespace aux = facetex::models::aux;

namespace facetex::app {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The assets the front end needs (scripts/fetch_assets.sh installs them).
struct FaceAssets {
  fs::path predictor, mesh, mesh_map;
};

FaceAssets resolve_assets(const Config& c) {
  const std::string root = assets_root(c, "face.assets");
  FaceAssets a;
  a.predictor = c.get_string("face.predictor", (fs::path(root) / "dlib/shape_predictor_68_face_landmarks.dat").string());
  a.mesh = c.get_string("face.mesh", (fs::path(root) / "mediapipe/geometry_pipeline_metadata_landmarks.binarypb").string());
  a.mesh_map = c.get_string("face.mesh_map", (fs::path(root) / "human/facemeshcoords.ts").string());
  return a;
}

// Everything the pipeline loads once: detector + predictor, mesh, 68 -> mesh map.
struct FrontEnd {
  std::unique_ptr<aux::DlibLandmarker> landmarker;
  f3d::CanonicalMesh mesh;
  std::vector<int64_t> map68;
  f3d::PoseFitOptions fit;
  f3d::UnwrapOptions unwrap;

  explicit FrontEnd(const Config& c) {
    const FaceAssets a = resolve_assets(c);
    aux::DetectorOptions d;
    d.upsample = static_cast<int>(c.get_int("face.upsample", 1));
    mesh = f3d::load_canonical_mesh(a.mesh);
    map68 = f3d::load_dlib68_to_mesh(a.mesh_map);
    landmarker = std::make_unique<aux::DlibLandmarker>(a.predictor, d);
    fit.refine = !c.get_bool("face.no_refine", false);
    unwrap.resolution = static_cast<int>(c.get_int("face.uv_size", 256));
    FACETEX_CHECK_USAGE(unwrap.resolution >= 16 && unwrap.resolution <= 4096, "--uv-size must be 16..4096, got {}",
                        unwrap.resolution);
  }
};

at::Tensor as_tensor(const data::Image& im) {  // a view of the pixels: keep `im` alive
  return at::from_blob(const_cast<uint8_t*>(im.rgb.data()), {im.height, im.width, 3}, at::kByte);
}

data::Image hwc_image(const at::Tensor& t) {  // [H, W, 3] uint8
  const at::Tensor c = t.contiguous();
  data::Image im;
  im.height = static_cast<int>(c.size(0));
  im.width = static_cast<int>(c.size(1));
  im.rgb.assign(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
  return im;
}
data::Image chw_image(const at::Tensor& t) { return hwc_image(t.permute({1, 2, 0})); }  // [3, R, R] uint8
data::Image mask_image(const at::Tensor& m) { return hwc_image((m * 255).unsqueeze(2).expand({-1, -1, 3})); }

at::Tensor landmarks_tensor(const aux::Landmarks68& l) {
  at::Tensor t = at::empty({68, 2}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), l.data(), sizeof(float) * 136);
  return t;
}

struct FaceResult {
  f3d::PoseFit pose;
  f3d::UvTexture uv;
  at::Tensor render;  // [H, W, 3] uint8
  double fit_s = 0, unwrap_s = 0;
};

FaceResult fit_and_unwrap(const FrontEnd& fe, const data::Image& photo, const aux::DetectedFace& face) {
  FaceResult r;
  auto t0 = Clock::now();
  const at::Tensor lm = landmarks_tensor(face.landmarks);
  r.pose = f3d::fit_dlib68(fe.mesh, fe.map68, lm, fe.fit);
  r.fit_s = seconds_since(t0);
  t0 = Clock::now();
  const at::Tensor img = as_tensor(photo);
  r.uv = f3d::unwrap_to_uv(img, fe.mesh.uv, fe.mesh.triangles, r.pose.projected, r.pose.depth, fe.unwrap);
  r.unwrap_s = seconds_since(t0);
  f3d::OverlayOptions o;
  o.points = lm;
  o.box = {face.box.left, face.box.top, face.box.width, face.box.height};
  r.render = f3d::draw_mesh_overlay(img, r.pose.projected, r.pose.depth, fe.mesh.triangles, o);
  return r;
}

nlohmann::json pose_json(const f3d::PoseFit& p) {
  const auto ypr = p.yaw_pitch_roll_degrees();
  return {{"mean_residual_px", p.mean_residual_px},
          {"max_residual_px", p.max_residual_px},
          {"points", 51},
          {"refine_iterations", p.iterations},
          {"scale_px_per_cm", p.scale},
          {"rotation", p.rotation},
          {"translation_px", p.translation},
          {"yaw_pitch_roll_deg", ypr}};
}

nlohmann::json face_json(const aux::DetectedFace& f) {
  nlohmann::json pts = nlohmann::json::array();
  for (const auto& p : f.landmarks) pts.push_back({p[0], p[1]});
  return {{"box", {{"left", f.box.left}, {"top", f.box.top}, {"width", f.box.width}, {"height", f.box.height}}},
          {"score", f.score},
          {"interocular_px", aux::interocular_distance(f.landmarks)},
          {"landmarks68", pts}};
}

data::Image read_photo(const fs::path& path) {
  std::error_code ec;
  FACETEX_CHECK_DATA(fs::exists(path, ec), "{}: no such file", path.string());
  FACETEX_CHECK_DATA(fs::is_regular_file(path, ec), "{}: not an image file (a folder?)", path.string());
  return data::decode_image(read_file(path), path.string());
}

int run_fit(const Config& c) {
  const fs::path image_path = c.require_string("face.image");
  const fs::path out = c.require_string("face.out");
  FACETEX_CHECK_USAGE(!out.empty(), "--out must name a folder");
  const auto t_start = Clock::now();
  const data::Image photo = read_photo(image_path);  // before the 1 s model load: bad input fails fast
  auto t0 = Clock::now();
  const FrontEnd fe(c);
  const double load_s = seconds_since(t0);
  t0 = Clock::now();
  const std::vector<aux::DetectedFace> faces = fe.landmarker->detect(photo.rgb.data(), photo.height, photo.width);
  const double detect_s = seconds_since(t0);
  FACETEX_CHECK_DATA(!faces.empty(), "{}: no face found ({}x{} pixels)", image_path.string(), photo.width,
                     photo.height);
  const aux::DetectedFace& face = faces.front();  // the largest
  const FaceResult r = fit_and_unwrap(fe, photo, face);

  std::error_code ec;
  fs::create_directories(out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot create the output folder: {}", out.string(), ec.message());
  nlohmann::json faces_json = nlohmann::json::array();
  for (const auto& f : faces) faces_json.push_back(face_json(f));
  const nlohmann::json j = {
      {"image", image_path.string()},
      {"width", photo.width},
      {"height", photo.height},
      {"faces", faces_json},
      {"selected", 0},
      {"fit", pose_json(r.pose)},
      {"uv", {{"size", fe.unwrap.resolution}, {"coverage", r.uv.coverage}, {"chart_coverage", r.uv.chart_coverage}}},
      {"created_by", "facetex " FACETEX_VERSION}};
  write_file_atomic(out / "landmarks.json", j.dump(2) + "\n");
  data::write_png((out / "uv.png").string(), chw_image(r.uv.texture));
  data::write_png((out / "uv_mask.png").string(), mask_image(r.uv.mask));
  data::write_png((out / "render.png").string(), hwc_image(r.render));
  // The mesh as posed in the photo, in cm, in an OpenGL-style frame (x right, y up, z towards the viewer).
  const auto g = r.pose.rotation_gl();
  at::Tensor rot = at::empty({3, 3}, at::kFloat);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) rot[i][k] = static_cast<float>(g[i][k]);
  const at::Tensor verts = at::matmul(fe.mesh.vertices, rot.t()).contiguous();
  f3d::write_textured_obj(out, "mesh", verts, fe.mesh.uv, fe.mesh.triangles, r.uv.texture);

  const auto ypr = r.pose.yaw_pitch_roll_degrees();
  std::printf("face fit: %zu face(s) in %s (%dx%d), using the largest: box %.0f,%.0f %.0fx%.0f, score %.2f, "
              "inter-ocular %.1f px\n",
              faces.size(), image_path.string().c_str(), photo.width, photo.height, face.box.left, face.box.top,
              face.box.width, face.box.height, face.score, aux::interocular_distance(face.landmarks));
  std::printf("face fit: residual %.2f px mean, %.2f px max on 51 landmarks (scale %.2f px/cm, yaw %.1f pitch %.1f "
              "roll %.1f deg)\n",
              r.pose.mean_residual_px, r.pose.max_residual_px, r.pose.scale, ypr[0], ypr[1], ypr[2]);
  std::printf("face fit: UV coverage %.1f%% of the %dx%d map (layout covers %.1f%%); models %.2f s, detect %.2f s, "
              "fit %.3f s, unwrap %.3f s, total %.2f s -> %s\n",
              100 * r.uv.coverage, fe.unwrap.resolution, fe.unwrap.resolution, 100 * r.uv.chart_coverage, load_s,
              detect_s, r.fit_s, r.unwrap_s, seconds_since(t_start), out.string().c_str());
  return 0;
}

// ---- face eval ----------------------------------------------------------------------------------------------

// A square crop of side `side` centred at (cx, cy), zero-padded, resized to tile x tile.
cv::Mat crop_tile(const cv::Mat& img, double cx, double cy, double side, int tile) {
  const int s = std::max(1, static_cast<int>(std::lround(side)));
  const int x0 = static_cast<int>(std::lround(cx - side / 2)), y0 = static_cast<int>(std::lround(cy - side / 2));
  cv::Mat crop(s, s, img.type(), cv::Scalar::all(0));
  const cv::Rect src = cv::Rect(x0, y0, s, s) & cv::Rect(0, 0, img.cols, img.rows);
  if (src.area() > 0) img(src).copyTo(crop(cv::Rect(src.x - x0, src.y - y0, src.width, src.height)));
  cv::Mat out;
  cv::resize(crop, out, cv::Size(tile, tile), 0, 0, s > tile ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

cv::Mat mat_of(const at::Tensor& hwc) {  // a view; keep the tensor alive
  return cv::Mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr<uint8_t>());
}

struct Stats {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double mean() const { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
  double median() const {
    if (v.empty()) return 0;
    auto s = v;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  }
  double max() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
  double min() const { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
  nlohmann::json json() const {
    return {{"n", v.size()}, {"mean", mean()}, {"median", median()}, {"min", min()}, {"max", max()}};
  }
};

int run_eval(const Config& c) {
  const fs::path xml = c.require_string("face.xml");
  const std::string sheet_path = c.get_string("face.sheet", "");
  const std::string json_path = c.get_string("face.json", "");
  const int tile = static_cast<int>(c.get_int("face.tile", 160));
  FACETEX_CHECK_USAGE(tile >= 32 && tile <= 1024, "--tile must be 32..1024, got {}", tile);
  const double min_iou = c.get_double("face.min_iou", 0.3);
  FACETEX_CHECK_USAGE(min_iou > 0 && min_iou <= 1, "--min-iou must be in (0, 1], got {}", min_iou);
  const std::vector<aux::GroundTruthImage> gt = aux::load_landmark_xml(xml);
  int64_t boxes = 0;
  for (const auto& im : gt) boxes += static_cast<int64_t>(im.faces.size());
  // Figures over no faces would print as zeros, indistinguishable from a detector that finds nothing.
  FACETEX_CHECK_DATA(boxes > 0, "{}: no ground-truth face boxes ({} images); nothing to evaluate", xml.string(),
                     gt.size());
  const FrontEnd fe(c);

  int64_t truth_faces = 0, detections = 0, matched = 0;
  Stats nme, nme_gt_box, residual, residual_rel, coverage, detect_s, iod;
  std::vector<std::array<cv::Mat, 3>> rows;  // photo | render | UV per ground-truth face
  nlohmann::json per_face = nlohmann::json::array();
  Progress progress("face eval", static_cast<int64_t>(gt.size()), "images");
  for (const auto& im : gt) {
    const data::Image photo = read_photo(im.file);
    const at::Tensor img = as_tensor(photo);
    const auto t0 = Clock::now();
    const auto faces = fe.landmarker->detect(photo.rgb.data(), photo.height, photo.width);
    detect_s.add(seconds_since(t0));
    detections += static_cast<int64_t>(faces.size());
    std::vector<aux::FaceBox> truth_boxes, pred_boxes;
    std::vector<const aux::GroundTruthFace*> truth;
    for (const auto& f : im.faces) {
      if (f.ignore || !f.has_parts) continue;
      truth.push_back(&f);
      truth_boxes.push_back(f.box);
    }
    for (const auto& f : faces) pred_boxes.push_back(f.box);
    const std::vector<int> match = aux::match_boxes(truth_boxes, pred_boxes, min_iou);
    for (size_t i = 0; i < truth.size(); ++i) {
      ++truth_faces;
      const aux::GroundTruthFace& t = *truth[i];
      const aux::DetectedFace in_box = fe.landmarker->landmarks_in_box(photo.rgb.data(), photo.height, photo.width, t.box);
      nme_gt_box.add(aux::landmark_nme(in_box.landmarks, t.landmarks));
      iod.add(aux::interocular_distance(t.landmarks));
      nlohmann::json fj = {{"image", im.file.filename().string()},
                           {"truth_box", {t.box.left, t.box.top, t.box.width, t.box.height}},
                           {"interocular_px", aux::interocular_distance(t.landmarks)},
                           {"detected", match[i] >= 0}};
      const double cx = t.box.left + t.box.width / 2, cy = t.box.top + t.box.height / 2;
      const double side = 2.0 * std::max(t.box.width, t.box.height);
      std::array<cv::Mat, 3> row;
      row[0] = crop_tile(mat_of(img), cx, cy, side, tile);
      if (match[i] >= 0) {
        ++matched;
        const aux::DetectedFace& f = faces[match[i]];
        const FaceResult r = fit_and_unwrap(fe, photo, f);
        const double e = aux::landmark_nme(f.landmarks, t.landmarks);
        nme.add(e);
        residual.add(r.pose.mean_residual_px);
        residual_rel.add(r.pose.mean_residual_px / aux::interocular_distance(f.landmarks));
        coverage.add(r.uv.coverage);
        const auto ypr = r.pose.yaw_pitch_roll_degrees();
        fj["iou"] = aux::box_iou(t.box, f.box);
        fj["nme"] = e;
        fj["fit_residual_px"] = r.pose.mean_residual_px;
        fj["uv_coverage"] = r.uv.coverage;
        fj["yaw_pitch_roll_deg"] = ypr;
        row[1] = crop_tile(mat_of(r.render), cx, cy, side, tile);
        const at::Tensor uv_hwc = r.uv.texture.permute({1, 2, 0}).contiguous();
        cv::resize(mat_of(uv_hwc), row[2], cv::Size(tile, tile), 0, 0, cv::INTER_AREA);
      } else {
        row[1] = cv::Mat(tile, tile, CV_8UC3, cv::Scalar(90, 20, 20));  // missed: dark red tiles
        row[2] = row[1].clone();
      }
      per_face.push_back(fj);
      if (!sheet_path.empty()) rows.push_back(std::move(row));
    }
    progress.advance();
  }
  progress.finish();
  const int64_t false_positives = detections - matched;
  std::printf("face eval: %s: %zu images, %lld ground-truth faces (inter-ocular %.0f-%.0f px, median %.0f)\n",
              xml.string().c_str(), gt.size(), static_cast<long long>(truth_faces), iod.min(), iod.max(), iod.median());
  std::printf("face eval: detection %lld/%lld = %.1f%% at IoU >= %.2f, %lld other detections; %.2f s per image\n",
              static_cast<long long>(matched), static_cast<long long>(truth_faces),
              truth_faces ? 100.0 * matched / truth_faces : 0.0, min_iou, static_cast<long long>(false_positives),
              detect_s.mean());
  std::printf("face eval: landmark NME (inter-ocular, 68 points) mean %.4f median %.4f max %.4f on detected faces; "
              "%.4f mean from the ground-truth boxes\n",
              nme.mean(), nme.median(), nme.max(), nme_gt_box.mean());
  std::printf("face eval: mesh fit residual mean %.2f px (%.3f of inter-ocular), max %.2f px; UV coverage mean %.1f%% "
              "(min %.1f%%, max %.1f%%)\n",
              residual.mean(), residual_rel.mean(), residual.max(), 100 * coverage.mean(), 100 * coverage.min(),
              100 * coverage.max());
  if (!json_path.empty()) {
    const nlohmann::json j = {{"xml", xml.string()},
                              {"images", gt.size()},
                              {"truth_faces", truth_faces},
                              {"detected", matched},
                              {"detection_rate", truth_faces ? double(matched) / truth_faces : 0.0},
                              {"other_detections", false_positives},
                              {"min_iou", min_iou},
                              {"nme", nme.json()},
                              {"nme_truth_boxes", nme_gt_box.json()},
                              {"fit_residual_px", residual.json()},
                              {"fit_residual_interocular", residual_rel.json()},
                              {"uv_coverage", coverage.json()},
                              {"detect_seconds", detect_s.json()},
                              {"faces", per_face}};
    write_file_atomic(json_path, j.dump(2) + "\n");
  }
  if (!sheet_path.empty() && !rows.empty()) {
    // Three faces (nine tiles) per sheet row, 4 px gaps.
    const int per_row = 3, gap = 4, n = static_cast<int>(rows.size());
    const int sheet_rows = (n + per_row - 1) / per_row;
    const int w = per_row * (3 * tile + 2 * gap) + (per_row - 1) * 4 * gap, h = sheet_rows * (tile + gap) - gap;
    cv::Mat sheet(h, w, CV_8UC3, cv::Scalar::all(255));
    for (int i = 0; i < n; ++i) {
      const int x = (i % per_row) * (3 * tile + 6 * gap), y = (i / per_row) * (tile + gap);
      for (int k = 0; k < 3; ++k) rows[i][k].copyTo(sheet(cv::Rect(x + k * (tile + gap), y, tile, tile)));
    }
    data::Image out;
    out.height = sheet.rows;
    out.width = sheet.cols;
    out.rgb.assign(sheet.data, sheet.data + sheet.total() * 3);
    data::write_png(sheet_path, out);
    std::printf("face eval: contact sheet (photo | render | UV texture per face) -> %s\n", sheet_path.c_str());
  }
  return 0;
}

void add_asset_options(Cli& cli, CLI::App* cmd) {
  cli.option(cmd, "--assets", "face.assets", "Assets folder (scripts/fetch_assets.sh)", "$FACETEX_ASSETS or <source>/assets");
  cli.option(cmd, "--predictor", "face.predictor", "dlib 68-point shape predictor",
             "<assets>/dlib/shape_predictor_68_face_landmarks.dat");
  cli.option(cmd, "--mesh", "face.mesh", "MediaPipe canonical face mesh",
             "<assets>/mediapipe/geometry_pipeline_metadata_landmarks.binarypb");
  cli.option(cmd, "--mesh-map", "face.mesh_map", "dlib-68 -> mesh vertex map (VTX68)", "<assets>/human/facemeshcoords.ts");
  cli.option(cmd, "--upsample", "face.upsample", "Image doublings before face detection (finds faces ~40 px wide at 1)",
             "1");
  cli.option(cmd, "--uv-size", "face.uv_size", "Side of the UV texture", "256");
  cli.flag(cmd, "--no-refine", "face.no_refine", "Keep the linear pose fit (skip the Gauss-Newton refinement)");
}

}  // namespace

void add_face_commands(Cli& cli) {
  CLI::App* face = cli.app().add_subcommand("face", "Real photos: face detection, 68 landmarks, mesh fit, UV texture");
  face->require_subcommand(1);

  CLI::App* fit = face->add_subcommand(
      "fit", "Detect the largest face, fit the canonical mesh, unwrap the photo into a UV texture; writes "
             "landmarks.json, mesh.obj/.mtl/.png, render.png, uv.png, uv_mask.png into --out");
  cli.required(fit, "--image", "face.image", "Photo (PNG/JPEG)");
  cli.required(fit, "--out", "face.out", "Output folder (created)");
  add_asset_options(cli, fit);
  cli.on_run(fit, run_fit);

  CLI::App* eval = face->add_subcommand(
      "eval", "Detection rate, landmark error, fit residual and UV coverage on a dlib landmark XML "
              "(e.g. assets/dlib/faces/testing_with_face_landmarks.xml)");
  cli.required(eval, "--xml", "face.xml", "dlib/imglab XML with boxes and 68 parts");
  cli.option(eval, "--sheet", "face.sheet", "Write a contact sheet PNG (photo | render | UV texture per face)");
  cli.option(eval, "--json", "face.json", "Write the figures and per-face results as JSON");
  cli.option(eval, "--tile", "face.tile", "Contact sheet tile side", "160");
  cli.option(eval, "--min-iou", "face.min_iou", "IoU a detection needs to count for a ground-truth box", "0.3");
  add_asset_options(cli, eval);
  cli.on_run(eval, run_eval);
}

}  // namespace facetex::app
