// `facetex data annotate` (DESIGN.md §1, §4, §5): fills the geometry annotations that training's dataset
// background mode reads — /coeffs (the morphable model's coefficient layout), /crop (left, up, s of the 224
// protocol, spec §3.5), /valid, /lm68, /lm5 and /fit_residual — for every row of a packed dataset, writing new
// shards (image bytes and CRCs copied unchanged) plus a manifest into another folder.
//
// Front end: a landmark source gives each row's 68 points (dlib's detector + predictor
// on real photos; for renders of a known model, the projection of the true keypoints — spec §10's deterministic
// provider), then models/face3d/landmark_fit.h: POS -> crop box -> Levenberg-Marquardt fit of the coefficients
// through exactly the renderer's camera — or, with ReconNet weights, POS -> 224 crop -> ReconNet (spec §3.5-3.6). Rows without a face get valid = 0 and the no-face crop [2000, 2000, 1]
// (renders off-screen: training composites the plain background).
//
// Jobs: --part i/N takes a contiguous run of the input's shards (Slurm arrays; `data merge-manifest` joins the part
// manifests). Each output shard is written atomically (temporary file + rename) and records a digest of its input
// shard and every setting, so a re-run keeps finished shards and redoes only the rest. A corrupt row stops the job
// (--on-corrupt fail: DataError naming the file and row) or is left out, counted and listed in the manifest.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/partition.h"
#include "data/dataset.h"
#include "data/manifest.h"
#include "data/shard_reader.h"
#include "models/aux/dlib_landmarks.h"
#include "models/aux/recon_net.h"
#include "models/face3d/landmark_fit.h"
#include "models/face3d/morphable_model.h"

namespace facetex::train {

// One row, as a landmark source sees it.
struct LandmarkQuery {
  const uint8_t* rgb = nullptr;  // HWC RGB
  int height = 0, width = 0;
  const data::ShardReader* shard = nullptr;
  int64_t row = 0;
  std::string key;
};

// Finds the face of a row: its 68 landmarks (iBUG order; x right, y down, pixel centres at integer coordinates),
// or nullopt for "no face". Not required to be thread-safe: every worker thread gets its own.
class LandmarkSource {
 public:
  virtual ~LandmarkSource() = default;
  virtual std::optional<models::aux::Landmarks68> landmarks(const LandmarkQuery& query) = 0;
};

struct LandmarkProvider {
  std::string name;  // enters each shard's digest: a different provider re-annotates
  std::function<std::unique_ptr<LandmarkSource>()> make;
  bool needs_annotated_shards = false;  // reads each input's /coeffs + /crop: photo files have none
};

// dlib's HOG detector + 68-point predictor; the largest face of each image.
LandmarkProvider dlib_landmark_provider(const std::filesystem::path& predictor, models::aux::DetectorOptions options = {});
// The input's own /coeffs + /crop (+ /valid) annotations projected through the renderer's camera — for shards of
// renders with known geometry (e.g. `data synth`), where it checks the annotator against the truth.
LandmarkProvider annotation_landmark_provider(const models::face3d::MorphableModel& model,
                                              const models::face3d::CameraOptions& camera = {});
// The commands' --landmarks choice: "dlib" (`predictor`, `detector`) or "annotations" (the inputs' own, on `model`).
// Anything else is a usage error.
LandmarkProvider landmark_provider_choice(const std::string& choice, const models::face3d::MorphableModel& model,
                                          const std::filesystem::path& predictor,
                                          models::aux::DetectorOptions detector = {});

// ReconNet geometry for images [B, 3, H, W] (float, 0-255) with their 68 landmarks [B, 68, 2] and has_face [B]:
// POS from the five points -> 224 crop -> the network's coefficients, shaped like fit_landmarks' result (crop,
// valid, lm5, projected, residual_px). The model must have the 257 BFM layout. Shared with `facetex reconstruct`.
models::face3d::LandmarkFit recon_geometry(const models::aux::ReconNet& net, const models::face3d::MorphableModel& model,
                                           const at::Tensor& images, const at::Tensor& lm68, const at::Tensor& has_face,
                                           const models::face3d::CameraOptions& camera);

struct AnnotateOptions {
  std::filesystem::path shards;  // input: a packed dataset (dataset.json + shards)
  std::filesystem::path out;     // output folder (created): shards, dataset.json (or a part manifest), model
  Part part;
  models::face3d::MorphableModel model;
  std::string model_name;        // e.g. "synthetic seed 0 grid 40", "canonical", "<mat>:<uv>" (digest, annotate.json)
  LandmarkProvider landmarks;
  models::face3d::LandmarkFitOptions fit;
  // ReconNet weights (Deep3DFaceRecon's net_recon, converted): when set, the coefficients are the network's output
  // on the 224 crop (spec §3.5-3.6) instead of the landmark fit; the model must have the 257 BFM layout.
  std::filesystem::path recon_weights;
  data::OnCorrupt on_corrupt = data::OnCorrupt::kFail;
  int threads = 0;               // landmark workers; 0 = all hardware threads
  int fit_batch = 256;           // rows per batched fit
  int deflate = 0;               // raw storage: deflate level of the written images
  // A finished annotated dataset in `out` (its dataset.json or this part's manifest) whose shards these settings
  // would rewrite (another model, landmark source, fit, ...) is refused unless `overwrite`, which removes the manifest
  // first, so that a half-rewritten folder never verifies as a dataset.
  bool overwrite = false;
};

struct AnnotateResult {
  data::Manifest manifest;
  std::filesystem::path manifest_path;
  int64_t shards_written = 0, shards_reused = 0;
  int64_t rows = 0;              // rows in the output shards of this part (written and kept)
  int64_t rows_processed = 0;    // rows annotated by this run
  int64_t faces = 0, no_face = 0, skipped_rows = 0;
  double mean_residual_px = 0;   // over rows with a face: mean keypoint-landmark distance
  double mean_residual_iod = 0;  // the same divided by each face's inter-ocular distance (outer eye corners)
  double seconds = 0;
};

AnnotateResult annotate_shards(const AnnotateOptions& options);

// What annotate's shard digests and reconstruct's settings record of the geometry: a face model (its name and the
// bytes of its shape tensors) and the landmark fit's settings, as text.
std::string face_model_digest(const std::string& name, const models::face3d::MorphableModel& model);
std::string fit_settings_text(const models::face3d::LandmarkFitOptions& fit);

// The --model argument: "synthetic" (make_synthetic_model with `synthetic_seed` and the synthetic world's grid,
// i.e. what `data synth --seed` writes), "canonical" (the MediaPipe mesh from the assets folder) or "MAT:UV".
struct ModelChoice {
  models::face3d::MorphableModel model;
  std::string name;
};
ModelChoice load_model_choice(const std::string& spec, uint64_t synthetic_seed, int synthetic_grid,
                              const std::filesystem::path& assets_dir);

// annotate's --model auto (the default), as a spec for load_model_choice: the model recorded beside the input
// shards (a synthetic world's, an earlier annotate's; train/shards_face_model.h) as "MAT:UV", else "canonical"
// (real photos and no 3DMM: fitting a synthetic model's random identity bases to a real face folds the surface).
std::string auto_model_spec(const std::filesystem::path& shards);

}  // namespace facetex::train
