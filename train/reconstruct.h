// `facetex reconstruct` (spec §7.1-7.2, issue 7): texture recovery of real photos with a trained texture generator,
// batched. For every input photo: geometry (the real-photo front end of `data annotate` — dlib landmarks, POS crop,
// landmark fit — or ReconNet on the 224 crop when weights are given), the aligned target crop at
// `crop_resolution`, then projection into G: a W-space latent (one w broadcast to all layers, initialised at the
// mean of 10,000 mapped latents with truncation 0.7) and G's per-layer noise maps, optimised with Adam under the
// spec's learning-rate ramp-up/cosine ramp-down, a decaying w-noise, the noise regulariser (roll products over an
// average-pooled pyramid) and renormalisation, loss LPIPS (NVIDIA's vgg16.pt, when given) + 0.001·L1 +
// regularize_noise_weight·reg. B images are optimised together — one batched synthesis, render and loss per step —
// each with its own geometry, latent and noise maps (SynthesisLayer::noise_override) and its own random generator
// seeded from (seed, input index), so the result of an image does not depend on the batch it was in. The per-photo
// CPU stages around the projection (decoding, landmarks and fit; rendering and encoding the outputs) run on
// `io_threads` workers, a photo each.
//
// Outputs per image OUT/<name>/ (the spec's test_celeba files): proj_tex.png (UV texture), proj_model.obj/.mtl/.png,
// proj_composed.png (full frame), proj_composed_crop.png, mask.png, mask_crop.png, target.png, target_crop.png,
// rendered_rot.png (yaw 0.5 rad, crop frame, black background), projected_w.npz (key w, (1, num_ws, w_dim) float32,
// as project_single_texture.py writes it) and result.json (scores: PSNR/SSIM/L1 on the full
// frame, masked crop metrics of spec §9.1; settings). An item folder is written under a temporary name and renamed
// when complete. The job manifest (manifest.jsonl, or manifest.part-<i>-of-<N>.jsonl for --part) has one line per
// input of the part: ok | no_face | bad_input | error with a message; it is rewritten atomically after every batch.
// A re-run skips inputs whose status is final — ok with its folder present and made with the same settings
// (ReconstructOptions::overwrite says what happens otherwise); no_face or bad_input under the same settings — and
// retries errors.
// A preemption signal (SIGTERM/SIGUSR1) lets the current batch finish and write, then the job returns preempted.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/partition.h"
#include "models/face3d/landmark_fit.h"
#include "models/face3d/morphable_model.h"
#include "train/annotate.h"

namespace facetex::train {

struct ProjectorSchedule {
  int steps = 1000;
  int w_avg_samples = 10000;
  double truncation_psi = 0.7;
  double initial_learning_rate = 0.1;
  double initial_noise_factor = 0.05;
  double lr_rampdown_length = 0.25;
  double lr_rampup_length = 0.05;
  double noise_ramp_length = 0.75;
  double regularize_noise_weight = 10000;  // test_celeba's REG_WEIGHT (the function default is 100)
  double l1_weight = 0.001;
  uint64_t w_stats_seed = 123;             // RandomState(123) of the w statistics
};

// How the projection computes G's modulated convolutions. Both are the reference's (synthesis.h), the same sum up to
// float rounding. grouped: per-image modulated weights, one grouped convolution over the batch (the reference's rule
// in eval mode, and at batch 1 — the public projector's case — an ordinary convolution); split: the activations are
// scaled before and after one convolution with the shared weight (the reference's training path), an ordinary
// batched convolution however many images. auto: grouped for a projection of one image, split for more — a grouped
// convolution with a group per image is a shape convolution libraries are tuned for far less than an ordinary batched
// one (bench_reconstruct prints batch B both ways).
enum class ModconvPath { kAuto, kGrouped, kSplit };
ModconvPath parse_modconv_path(const std::string& name);  // auto | grouped | split; UsageError otherwise
const char* modconv_path_name(ModconvPath path);
// Whether a projection of `images` images uses the grouped path.
bool modconv_grouped(ModconvPath path, int64_t images);

// The spec's per-step schedule at t = step / steps.
double projector_learning_rate(const ProjectorSchedule& s, double t);
double projector_w_noise_scale(const ProjectorSchedule& s, double w_std, double t);
// Noise regulariser of one batch of noise maps [B, 1, r, r] -> [B]: Σ_scales mean(n·roll_x(n))² + mean(n·roll_y(n))²,
// average-pooling 2x until the side is <= 8.
at::Tensor noise_regularizer(const at::Tensor& noise);

struct ReconstructOptions {
  std::filesystem::path checkpoint;   // weight file or training checkpoint
  std::string network = "G_ema";      // group of the texture generator (falls back to G when absent)
  std::filesystem::path inputs;       // folder of photos (searched recursively), one photo, or a packed dataset
  std::filesystem::path out;
  Part part;
  int batch = 1;
  // Threads for the per-photo CPU stages — decoding, landmarks and fit before a batch, rendering and encoding its
  // outputs after it (0: one per hardware thread; at most B are busy).
  int io_threads = 0;
  ModconvPath modconv = ModconvPath::kAuto;
  ProjectorSchedule schedule;
  int crop_resolution = 1024;         // side of the aligned target crop the loss runs on (spec: 1024)
  int64_t max_pixels = 64'000'000;    // larger images (by their header) are bad_input before decoding
  std::filesystem::path recon_weights;
  std::filesystem::path lpips_vgg;    // NVIDIA's vgg16.pt; empty: LPIPS off (said in the log and result.json)
  // Images per VGG16 pass of the LPIPS term: its activations take about 3.5 GB per 1024² image (float32), so a batch
  // of 32 would need over 100 GB at once; forward and backward run per chunk instead (same gradient up to rounding).
  int lpips_batch = 8;
  models::face3d::MorphableModel model;
  std::string model_name;
  LandmarkProvider landmarks;         // dlib_landmark_provider(...)
  models::face3d::LandmarkFitOptions fit;
  std::string device = "cpu";
  uint64_t seed = 0;
  // A re-run skips finished items made with the same settings (result.json's settings_digest: what the outputs
  // depend on), and refuses to start when some were made with other settings, naming them — unless `overwrite`, which
  // reconstructs those items again (each old folder is replaced only once its new one is complete).
  bool overwrite = false;
  // Identity term (off at 0): loss += id_weight · (1 − cos(desc(chip(synth)), desc(chip(target)))) per image, with
  // dlib's face-recognition ResNet (models/aux/dlib_face_resnet.h) on differentiable 150x150 dlib chips of the crop
  // frame (the chip geometry from the target's 68 landmarks, mapped into the crop). face_api: face-api's folder
  // (DIR/model/face_recognition_model-weights_manifest.json or DIR/face_recognition_model-weights_manifest.json) or
  // the manifest itself; UsageError when id_weight > 0 and it is missing.
  double id_weight = 0;
  std::filesystem::path face_api;
  // Benchmark baseline, not a user setting (bench_reconstruct's first row; requires batch 1): redo what the public
  // projector (texture_projector.project, spec §7.1) redoes for every photo or step and this code does once —
  // the w statistics (w_avg_samples mapped latents) per photo, the geometry rasterised every step instead of once per
  // photo, and VGG16's weight gradients computed every step (its loaded weights left requiring grad). Outputs are
  // the same up to rounding; only the cost differs. Not emulated (so the baseline is, if anything, too fast): the
  // public code also reloads VGG16, ReconNet, MTCNN and the face model and copies G for every photo.
  bool public_baseline = false;
};

// The face-recognition manifest that `face_api` names (a folder or the file), or empty when there is none.
std::filesystem::path face_api_manifest(const std::filesystem::path& face_api);

struct ReconstructResult {
  int64_t inputs = 0;                 // inputs of this part
  int64_t skipped = 0;                // final from an earlier run
  int64_t ok = 0, no_face = 0, bad_input = 0, error = 0;  // this run
  bool preempted = false;
  bool lpips = false;
  // Wall time: the whole part, and its stages (photos prepared — decoding, landmarks, fit — on the I/O workers; the
  // batched projection; outputs rendered, encoded and written on the I/O workers).
  double seconds = 0, prepare_seconds = 0, projection_seconds = 0, output_seconds = 0;
  std::filesystem::path manifest_path;
};

ReconstructResult reconstruct(const ReconstructOptions& options);

// Output folder names of the inputs (relative paths or dataset keys), in their order: the path without its
// extension, '/' and anything but [A-Za-z0-9._-] as '_' ("sub/b face.jpg" -> "sub_b_face"); inputs whose names
// would collide keep their extension ("a.jpg", "a.png"); names that still collide (sanitising is lossy: "a b.jpg" and
// "a_b.jpg") or exceed 200 bytes get a digest of the input's path ("a_b-3f9c0e12"). Distinct, and the same for the
// same list on every rank and part, so re-runs find their finished outputs.
std::vector<std::string> output_names(const std::vector<std::string>& sources);

// Registers facetex_reconstruct_items_total{status} (all four statuses at 0) so that a run exports the family.
void register_reconstruct_metrics();

// Image scores of spec §9.1 / skimage: images [3, H, W] in one unit (e.g. 0-255), data_range = recon max - min.
double image_psnr(const at::Tensor& target, const at::Tensor& recon);
double image_ssim(const at::Tensor& target, const at::Tensor& recon);  // 7x7 uniform window, sample covariance

// Width and height from a PNG or JPEG header, or nullopt (not such a file, or the header is cut short).
std::optional<std::pair<int64_t, int64_t>> image_header_size(const std::string& bytes);

}  // namespace facetex::train
