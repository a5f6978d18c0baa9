// Texture mode with generated backgrounds (model.background = generated): the paper's run_G_3D
// (paper-system-spec.md §3.1-3.6, §3.10, §3.13). The texture G and a frozen 2D face generator share z and the style
// mixing (one cutoff, one mixing_z); DFR reads the 2D generator's ws and predicts its face's coefficients, the pose
// is edited (angles borrowed from a permuted sample, sign-flipped w.p. 0.5, yaw := U(-3,3) - yaw with one draw per
// batch), RigNet turns the edit into a ws delta and the 2D generator synthesises the background. 20% of the
// backgrounds are mirrored, then five landmarks are detected (MTCNN, or a deterministic provider offline), POS +
// resize_n_crop align a 224 crop, ReconNet regresses its coefficients and the texture is rendered onto that
// geometry and composited. Everything except the texture synthesis runs without autograd.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>

#include "models/aux/dfr_model.h"
#include "models/aux/mtcnn.h"
#include "models/aux/recon_net.h"
#include "models/aux/rig_net.h"
#include "models/face3d/pos_align.h"
#include "models/stylegan2/generator.h"
#include "train/face_renderer.h"
#include "train/generator_pipeline.h"
#include "train/train_options.h"

namespace facetex::train {

// Five landmarks per image in MTCNN order (left eye, right eye, nose, left / right mouth corner), pixels.
struct FiveLandmarks {
  at::Tensor points;  // (B, 5, 2) float (x, y); rows without a face are ignored
  at::Tensor found;   // (B) bool
};

class FiveLandmarkDetector {
 public:
  virtual ~FiveLandmarkDetector() = default;
  // images (B, 3, H, W) RGB float in [0, 255].
  virtual FiveLandmarks detect(const at::Tensor& images) const = 0;
  virtual void to(const c10::Device&) {}
};

// facenet_pytorch's MTCNN (models/aux/mtcnn.h), the most probable face per image.
class MtcnnLandmarkDetector : public FiveLandmarkDetector {
 public:
  explicit MtcnnLandmarkDetector(models::aux::Mtcnn mtcnn) : mtcnn_(std::move(mtcnn)) {}
  FiveLandmarks detect(const at::Tensor& images) const override;
  void to(const c10::Device& device) override { mtcnn_.to(device); }

 private:
  models::aux::Mtcnn mtcnn_;
};

// The offline substitute of spec §10: the face model's five reference landmarks (lm3d, [5, 3]) seen frontally,
// centred in the image with `scale` pixels per model unit times the image side (x right, model y up), the same for
// every image; every image "has" a face. Deterministic.
class FixedLandmarkProvider : public FiveLandmarkDetector {
 public:
  FixedLandmarkProvider(at::Tensor lm3d, double scale) : lm3d_(lm3d.to(at::kFloat).cpu()), scale_(scale) {}
  FiveLandmarks detect(const at::Tensor& images) const override;

 private:
  at::Tensor lm3d_;
  double scale_;
};

// Spec §3.3's pose edit, literally and in the reference's draw order: rot_sign = ±1 per sample (rand < 0.5),
// perm = randperm(B), p_edit[:, 224:227] = rot_sign * p[perm, 224:227], then ONE u = 6 rand(1) - 3 for the whole
// batch and p_edit[:, 225] = u - p_edit[:, 225]. p: (B, 257).
struct PoseEdit {
  at::Tensor p_edit;    // (B, 257)
  at::Tensor yaw_draw;  // (1) u
};
PoseEdit edit_pose(const at::Tensor& p);

// Spec §3.4's per-sample mirror: flipped = rand(B) < prob; images[flipped] = images[flipped].flip(3).
struct RandomFlip {
  at::Tensor images;   // (B, C, H, W)
  at::Tensor flipped;  // (B) bool
};
RandomFlip random_flip(const at::Tensor& images, double prob);

struct GeneratedBackgroundNets {
  std::shared_ptr<models::stylegan2::Generator> trained_G;  // the frozen 2D generator (G_ema of e.g. ffhq.pkl)
  std::shared_ptr<models::aux::DFRModel> dfr;
  std::shared_ptr<models::aux::RigNet> rignet;
  std::shared_ptr<models::aux::ReconNet> recon;
  std::shared_ptr<FiveLandmarkDetector> detector;
};

struct GeneratedBackgroundOptions {
  double flip_prob = 0.2;
  models::face3d::CropProtocol protocol;
};

// The frozen branch's results for one batch (kept for tests and inspection).
struct GeneratedBatch {
  at::Tensor ws_trained;   // (B, num_ws, 512) the 2D generator's mixed ws (before the RigNet edit)
  at::Tensor p, p_edit;    // (B, 257) DFR's coefficients and the pose-edited ones
  at::Tensor yaw_draw;     // (1) the one U(-3, 3) draw of the batch
  at::Tensor backgrounds;  // (B, 3, R, R) the (possibly mirrored) 2D generator output, nominally [-1, 1], unclamped
  at::Tensor flipped;      // (B) bool
  at::Tensor found;        // (B) bool: a face was detected
  at::Tensor crop;         // (B, 3, 224, 224) uint8-quantised crop in [0, 1] as ReconNet saw it
  at::Tensor coeffs;       // (B, 257) ReconNet's coefficients
  at::Tensor bbox;         // (B, 3) [left/s', up/s', s]; [2000, 2000, 1] without a face
};

class GeneratedBackgroundPipeline : public GeneratorPipeline {
 public:
  // UsageError if the renderer's face model does not use the Deep3DFaceRecon layout 80/64/80/3/27/3, or if DFR,
  // RigNet and the 2D generator disagree on num_ws.
  GeneratedBackgroundPipeline(std::shared_ptr<const FaceRenderer> renderer, GeneratedBackgroundNets nets,
                              GeneratedBackgroundOptions options = {});

  // The context is ignored (backgrounds and geometry are made here). Noise applies to the texture G; the
  // background synthesis always uses random noise as the reference does.
  GeneratorOutput run(models::stylegan2::Generator& G, const at::Tensor& z, const BatchContext& context,
                      double style_mixing, models::stylegan2::NoiseMode noise) override;
  const char* mode() const override { return "texture"; }

  // The frozen branch alone, from the 2D generator's (mixed) ws.
  GeneratedBatch make_backgrounds(const at::Tensor& ws_trained) const;
  const GeneratedBatch& last_batch() const { return last_; }

  void to(const c10::Device& device);
  int64_t background_resolution() const { return nets_.trained_G->config().img_resolution; }
  const GeneratedBackgroundNets& nets() const { return nets_; }

 private:
  std::shared_ptr<const FaceRenderer> renderer_;
  GeneratedBackgroundNets nets_;
  GeneratedBackgroundOptions options_;
  at::Tensor lm3d_;  // [5, 3] the face model's reference landmarks (CPU)
  GeneratedBatch last_;
};

// The pipeline of a training config: model.background_generator (G_ema, else G), model.dfr, model.rignet,
// model.recon_net and model.mtcnn_dir/{pnet,rnet,onet}.h5, moved to `device`. UsageError naming the key of a
// missing setting or file.
std::unique_ptr<GeneratedBackgroundPipeline> load_generated_background_pipeline(
    const TrainOptions& options, std::shared_ptr<const FaceRenderer> renderer, const c10::Device& device);

}  // namespace facetex::train
