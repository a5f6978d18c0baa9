#include "train/generated_background.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "core/error.h"
#include "models/stylegan2/factory.h"
#include "models/weights/weight_file.h"

namespace facetex::train {

namespace fs = std::filesystem;
namespace f3 = models::face3d;
namespace sg = models::stylegan2;

namespace {

// Deep3DFaceRecon's coefficient layout (spec §3.6): DFR, ReconNet and the pose edit's indices assume it.
constexpr int64_t kAnglesOffset = 224;  // [224:227] = pitch, yaw, roll
constexpr int64_t kYaw = 225;

void freeze(torch::nn::Module& m) {
  for (auto& p : m.parameters(true)) p.set_requires_grad(false);
}

}  // namespace

FiveLandmarks MtcnnLandmarkDetector::detect(const at::Tensor& images) const {
  // As the training step calls it: channels last (spec §3.5).
  const models::aux::MtcnnSelection sel = mtcnn_.detect(images.permute({0, 2, 3, 1}));
  return {sel.points, sel.found};
}

FiveLandmarks FixedLandmarkProvider::detect(const at::Tensor& images) const {
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  const double k = scale_ * static_cast<double>(w);
  const at::Tensor x = lm3d_.select(1, 0) * k + w / 2.0;
  const at::Tensor y = h / 2.0 - lm3d_.select(1, 1) * k;  // model y points up, image rows down
  const at::Tensor points = at::stack({x, y}, 1).unsqueeze(0).expand({b, lm3d_.size(0), 2}).contiguous();
  return {points.to(images.device()), at::ones({b}, images.options().dtype(at::kBool))};
}

PoseEdit edit_pose(const at::Tensor& p) {
  FACETEX_CHECK_RUNTIME(p.dim() == 2 && p.size(1) == models::aux::kCoefficientCount,
                        "pose edit: coefficients must be (B, {}), got {}", models::aux::kCoefficientCount, p.sizes());
  at::NoGradGuard no_grad;
  const int64_t b = p.size(0);
  const auto opts = p.options();
  const at::Tensor rot_sign = (at::rand({b, 1}, opts) < 0.5).to(opts.dtype()) * 2 - 1;
  const at::Tensor perm = at::randperm(b, opts.dtype(at::kLong));
  PoseEdit out;
  out.p_edit = p.clone();
  out.p_edit.narrow(1, kAnglesOffset, 3).copy_(rot_sign * p.index_select(0, perm).narrow(1, kAnglesOffset, 3));
  out.yaw_draw = 6 * at::rand({1}, opts) - 3;
  out.p_edit.select(1, kYaw).copy_(out.yaw_draw - out.p_edit.select(1, kYaw));
  return out;
}

RandomFlip random_flip(const at::Tensor& images, double prob) {
  const int64_t b = images.size(0);
  RandomFlip out;
  out.flipped = at::rand({b}, images.options()) < prob;
  out.images = at::where(out.flipped.view({b, 1, 1, 1}), images.flip({3}), images);
  return out;
}

GeneratedBackgroundPipeline::GeneratedBackgroundPipeline(std::shared_ptr<const FaceRenderer> renderer,
                                                         GeneratedBackgroundNets nets,
                                                         GeneratedBackgroundOptions options)
    : renderer_(std::move(renderer)), nets_(std::move(nets)), options_(options) {
  FACETEX_CHECK_USAGE(renderer_ && nets_.trained_G && nets_.dfr && nets_.rignet && nets_.recon && nets_.detector,
                      "generated backgrounds: the renderer and all frozen networks are required");
  const f3::CoeffLayout& l = renderer_->layout();
  FACETEX_CHECK_USAGE(l.id == 80 && l.exp == 64 && l.tex == 80 && l.angles == 3 && l.light == 27 && l.trans == 3,
                      "model.background = generated: DFR and ReconNet predict the Deep3DFaceRecon coefficient layout "
                      "(80 identity / 64 expression / 80 texture / 3 / 27 / 3 = 257), but the face model "
                      "(model.face_model_mat) has {} / {} / {} identity / expression / texture dimensions",
                      l.id, l.exp, l.tex);
  const int64_t num_ws = nets_.trained_G->num_ws();
  FACETEX_CHECK_USAGE(nets_.dfr->num_ws() == num_ws && nets_.rignet->num_ws() == num_ws,
                      "model.background = generated: the 2D generator has {} ws but DFR reads {} and RigNet edits {}",
                      num_ws, nets_.dfr->num_ws(), nets_.rignet->num_ws());
  lm3d_ = f3::model_reference_lm3d(renderer_->model()).to(at::kFloat).cpu();
  // Frozen: the 2D generator's mapping runs in eval mode (no w_avg update); nothing here is differentiated.
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{
           nets_.trained_G.get(), nets_.dfr.get(), nets_.rignet.get(), nets_.recon.get()}) {
    m->eval();
    freeze(*m);
  }
}

void GeneratedBackgroundPipeline::to(const c10::Device& device) {
  nets_.trained_G->to(device);
  nets_.dfr->to(device);
  nets_.rignet->to(device);
  nets_.recon->to(device);
  nets_.detector->to(device);
}

GeneratedBatch GeneratedBackgroundPipeline::make_backgrounds(const at::Tensor& ws_trained) const {
  at::NoGradGuard no_grad;  // spec §3.13: the whole background / geometry branch is frozen
  const auto opts = ws_trained.options();
  GeneratedBatch out;
  out.ws_trained = ws_trained;

  // §3.3 deep feature manipulation.
  out.p = nets_.dfr->forward(ws_trained);
  PoseEdit edit = edit_pose(out.p);
  out.p_edit = edit.p_edit;
  out.yaw_draw = edit.yaw_draw;
  const at::Tensor ws_mod = ws_trained + nets_.rignet->forward(ws_trained, out.p_edit);

  // §3.4 background synthesis (random noise) and the per-sample 20% mirror before detection.
  sg::SynthesisOptions so;
  so.noise_mode = sg::NoiseMode::kRandom;
  at::Tensor bg = nets_.trained_G->synthesis->forward(ws_mod, so);
  RandomFlip flip = random_flip(bg, options_.flip_prob);
  out.flipped = flip.flipped;
  bg = out.backgrounds = flip.images;
  const at::Tensor bg_normalized = ((bg + 1) * (255.0 / 2)).clamp(0, 255);

  // §3.5 detection and alignment; §3.6 regression on the uint8-quantised crop (clamped first: no wrap-around).
  const FiveLandmarks lm = nets_.detector->detect(bg_normalized);
  const f3::AlignedCrop aligned = f3::align_faces(bg_normalized, lm.points, lm3d_, lm.found, options_.protocol);
  out.found = aligned.valid.to(ws_trained.device());
  out.crop = aligned.crop.clamp(0, 255).to(at::kByte).to(opts.dtype()) / 255;
  out.coeffs = nets_.recon->forward(out.crop);
  out.bbox = aligned.bbox.to(ws_trained.device());
  return out;
}

GeneratorOutput GeneratedBackgroundPipeline::run(sg::Generator& G, const at::Tensor& z, const BatchContext&,
                                                 double style_mixing, sg::NoiseMode noise) {
  // §3.1: trained_G.mapping(z) (eval: no w_avg update), G.mapping(z) (train: updates w_avg), then one cutoff and one
  // mixing_z for both (the draws of models::stylegan2::mix_styles, in its order).
  FACETEX_CHECK_RUNTIME(z.size(1) == nets_.trained_G->config().z_dim,
                        "generated backgrounds: the texture G's z ({}) and the 2D generator's z ({}) differ; both read "
                        "the same latents", z.size(1), nets_.trained_G->config().z_dim);
  at::Tensor ws_trained;
  {
    at::NoGradGuard no_grad;
    ws_trained = nets_.trained_G->mapping->forward(z);
  }
  at::Tensor ws = G.mapping->forward(z);
  if (style_mixing > 0) {
    const int64_t num_ws = ws.size(1);
    at::Tensor cutoff = at::empty({}, ws.options().dtype(at::kLong)).random_(1, num_ws);
    cutoff = at::where(at::rand({}, ws.options()) < style_mixing, cutoff, at::full_like(cutoff, num_ws));
    const int64_t c = cutoff.item<int64_t>();
    const at::Tensor mixing_z = at::randn_like(z);
    const at::Tensor other = G.mapping->forward(mixing_z, {}, /*skip_w_avg_update=*/true);
    if (c < num_ws) ws = at::cat({ws.narrow(1, 0, c), other.narrow(1, c, num_ws - c)}, 1);
    at::NoGradGuard no_grad;
    const at::Tensor other_trained = nets_.trained_G->mapping->forward(mixing_z, {}, /*skip_w_avg_update=*/true);
    const int64_t n2 = ws_trained.size(1);  // the same cutoff; a 2D generator with fewer ws mixes fewer
    if (c < n2) ws_trained = at::cat({ws_trained.narrow(1, 0, c), other_trained.narrow(1, c, n2 - c)}, 1);
  }
  GeneratorOutput out;
  out.ws = ws;  // ws_tex = ws (spec §3.2)
  sg::SynthesisOptions o;
  o.noise_mode = noise;
  out.texture = G.synthesis->forward(ws, o);
  last_ = make_backgrounds(ws_trained);
  // §3.10 with the per-sample mask; the texture is the only differentiable input.
  out.image = renderer_->render_into(out.texture, last_.coeffs, last_.bbox, last_.backgrounds);
  return out;
}

std::unique_ptr<GeneratedBackgroundPipeline> load_generated_background_pipeline(
    const TrainOptions& o, std::shared_ptr<const FaceRenderer> renderer, const c10::Device& device) {
  const auto need = [](const std::string& value, const char* key) {
    FACETEX_CHECK_USAGE(!value.empty(), "model.background = generated needs {} (see docs: the frozen networks of the "
                        "generated-background branch)", key);
    FACETEX_CHECK_USAGE(fs::exists(value), "{} = '{}': no such file or folder", key, value);
  };
  need(o.background_generator, "model.background_generator");
  need(o.dfr, "model.dfr");
  need(o.rignet, "model.rignet");
  need(o.recon_net, "model.recon_net");
  need(o.mtcnn_dir, "model.mtcnn_dir");
  const fs::path mtcnn_dir = o.mtcnn_dir;
  for (const char* net : {"pnet.h5", "rnet.h5", "onet.h5"}) {
    FACETEX_CHECK_USAGE(fs::exists(mtcnn_dir / net), "model.mtcnn_dir = '{}': no {} in it (convert facenet_pytorch's "
                        "pnet.pt, rnet.pt, onet.pt with facetex convert torch-state-dict)", o.mtcnn_dir, net);
  }

  GeneratedBackgroundNets nets;
  {
    auto weights = models::read_weight_file(o.background_generator);
    const std::string group = weights.count("G_ema") ? "G_ema" : weights.count("G") ? "G" : "";
    FACETEX_CHECK_USAGE(!group.empty(), "model.background_generator = '{}': the file has neither a G_ema nor a G "
                        "network", o.background_generator);
    nets.trained_G = std::dynamic_pointer_cast<sg::Generator>(
        sg::build_and_load(weights.at(group), o.background_generator + " /" + group));
    FACETEX_CHECK_USAGE(nets.trained_G != nullptr, "model.background_generator = '{}': /{} is not a Generator",
                        o.background_generator, group);
  }
  nets.dfr = models::aux::load_dfr_model(o.dfr);
  nets.rignet = models::aux::load_rig_net(o.rignet);
  nets.recon = models::aux::load_recon_net(o.recon_net);
  nets.detector = std::make_shared<MtcnnLandmarkDetector>(
      models::aux::Mtcnn::load(mtcnn_dir / "pnet.h5", mtcnn_dir / "rnet.h5", mtcnn_dir / "onet.h5"));
  auto pipeline = std::make_unique<GeneratedBackgroundPipeline>(std::move(renderer), std::move(nets));
  pipeline->to(device);
  return pipeline;
}

}  // namespace facetex::train
