#include "train/reconstruct.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <unistd.h>

#include "cluster/preemption.h"
#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
#include "core/npy.h"
#include "core/progress.h"
#include "core/version.h"
#include "core/work_pool.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/manifest.h"
#include "data/shard_reader.h"
#include "data/verify.h"
#include "models/aux/dlib_face_chip.h"
#include "models/aux/dlib_face_resnet.h"
#include "models/face3d/geometry.h"
#include "models/face3d/obj_export.h"
#include "models/face3d/pos_align.h"
#include "models/face3d/renderer.h"
#include "models/stylegan2/factory.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "train/metrics/recon_metrics.h"
#include "monitoring/metrics.h"
#include "train/face_renderer.h"
#include "train/job_settings.h"
#include "train/lpips_term.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace facetex::train {
namespace f3 = models::face3d;
namespace sg = models::stylegan2;

ModconvPath parse_modconv_path(const std::string& name) {
  if (name == "auto") return ModconvPath::kAuto;
  if (name == "grouped") return ModconvPath::kGrouped;
  FACETEX_CHECK_USAGE(name == "split", "--modconv {}: expected auto, grouped or split", name);
  return ModconvPath::kSplit;
}

const char* modconv_path_name(ModconvPath path) {
  switch (path) {
    case ModconvPath::kGrouped: return "grouped";
    case ModconvPath::kSplit: return "split";
    default: return "auto";
  }
}

bool modconv_grouped(ModconvPath path, int64_t images) {
  if (path == ModconvPath::kAuto) return images == 1;
  return path == ModconvPath::kGrouped;
}

double projector_learning_rate(const ProjectorSchedule& s, double t) {
  double lr_ramp = std::min(1.0, (1.0 - t) / s.lr_rampdown_length);
  lr_ramp = 0.5 - 0.5 * std::cos(lr_ramp * M_PI);
  lr_ramp = lr_ramp * std::min(1.0, t / s.lr_rampup_length);
  return s.initial_learning_rate * lr_ramp;
}

double projector_w_noise_scale(const ProjectorSchedule& s, double w_std, double t) {
  const double r = std::max(0.0, 1.0 - t / s.noise_ramp_length);
  return w_std * s.initial_noise_factor * r * r;
}

at::Tensor noise_regularizer(const at::Tensor& noise_in) {
  at::Tensor n = noise_in;
  at::Tensor reg = at::zeros({n.size(0)}, n.options());
  for (;;) {
    reg = reg + (n * at::roll(n, {1}, {3})).mean({1, 2, 3}).square() +
          (n * at::roll(n, {1}, {2})).mean({1, 2, 3}).square();
    if (n.size(2) <= 8) break;
    n = at::avg_pool2d(n, {2, 2});
  }
  return reg;
}

// max - min of `t` in float64 (the data range of the reference's skimage calls).
double data_range(const at::Tensor& t) { return (t.max().to(at::kDouble) - t.min().to(at::kDouble)).item<double>(); }

double image_psnr(const at::Tensor& target, const at::Tensor& recon) {
  return train::metrics::psnr(target, recon, data_range(recon));
}

double image_ssim(const at::Tensor& target, const at::Tensor& recon) {
  const double range = data_range(recon);
  return range > 0 ? train::metrics::ssim(target, recon, range) : std::numeric_limits<double>::quiet_NaN();
}

std::optional<std::pair<int64_t, int64_t>> image_header_size(const std::string& b) {
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[i])); };
  if (b.size() >= 24 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 && b.compare(12, 4, "IHDR") == 0) {
    const int64_t w = (u8(16) << 24) | (u8(17) << 16) | (u8(18) << 8) | u8(19);
    const int64_t h = (u8(20) << 24) | (u8(21) << 16) | (u8(22) << 8) | u8(23);
    return std::make_pair(w, h);
  }
  if (b.size() >= 4 && u8(0) == 0xFF && u8(1) == 0xD8) {
    size_t i = 2;
    while (i + 9 < b.size()) {
      if (u8(i) != 0xFF) return std::nullopt;
      const uint32_t marker = u8(i + 1);
      if (marker == 0xFF) { ++i; continue; }
      const size_t len = (u8(i + 2) << 8) | u8(i + 3);
      const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) {
        const int64_t h = (u8(i + 5) << 8) | u8(i + 6), w = (u8(i + 7) << 8) | u8(i + 8);
        return std::make_pair(w, h);
      }
      i += 2 + len;
    }
  }
  return std::nullopt;
}

fs::path face_api_manifest(const fs::path& face_api) {
  if (face_api.empty()) return {};
  if (fs::is_regular_file(face_api)) return face_api;
  for (const fs::path& p : {face_api / "model" / "face_recognition_model-weights_manifest.json",
                            face_api / "face_recognition_model-weights_manifest.json"}) {
    if (fs::is_regular_file(p)) return p;
  }
  return {};
}

void register_reconstruct_metrics() {
  for (const char* s : {"ok", "no_face", "bad_input", "error"}) {
    facetex::metrics::counter("facetex_reconstruct_items_total", "Inputs finished by facetex reconstruct, by status",
                     {{"status", s}})
        .inc(0);
  }
}

namespace {

constexpr int64_t kNoIndex = -1;

struct InputItem {
  int64_t index = 0;   // in the sorted list of all inputs (seeds the item's generator)
  std::string source;  // relative path, or the shard key
  std::string name;    // output folder name
  fs::path file;       // folder inputs
  const data::ShardReader* shard = nullptr;
  int64_t row = 0;
};

// What identifies an input's content for a re-run: a photo's size and modification time (as `data pack` digests its
// inputs), a packed row's stored CRC-32. A finished item whose input has another stamp now is done again.
std::string input_stamp(const InputItem& it) {
  if (it.shard != nullptr) return fmt::format("row crc32 {:08x}", it.shard->stored_crc(it.row));
  std::error_code ec;
  const auto size = fs::file_size(it.file, ec);
  if (ec) return "";
  const auto mtime = fs::last_write_time(it.file, ec);
  if (ec) return "";
  return fmt::format("{} bytes, mtime {}", size, mtime.time_since_epoch().count());
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out;
}

// The item's own generator: a hash of (seed, index), so that batching does not change its draws.
at::Generator item_generator(uint64_t seed, int64_t index) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index) + 0x632BE59BD9B4E019ull;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return at::make_generator<at::CPUGeneratorImpl>(x);
}

std::string image_png(const at::Tensor& chw) {  // [C, H, W] float 0-255 or uint8
  const at::Tensor t = chw.detach().to(at::kCPU).to(at::kFloat).clamp(0, 255).round().to(at::kByte);
  const at::Tensor hwc = (t.size(0) == 1 ? t.expand({3, t.size(1), t.size(2)}) : t).permute({1, 2, 0}).contiguous();
  data::Image img;
  img.height = static_cast<int>(hwc.size(0));
  img.width = static_cast<int>(hwc.size(1));
  img.rgb.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return data::encode_png(img);
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  FACETEX_CHECK_RUNTIME(f.good(), "{}: write failed", p.string());
}

// The settings an item's outputs depend on, by name: the generator, the projection schedule and loss, the geometry
// (face model, landmark source and fit, ReconNet) and the seed. Not in it: what only changes the cost or the float
// rounding (batch, modulated-convolution path, LPIPS chunking, device, threads) and max_pixels (it decides bad_input,
// never an output). Files enter as their stamps (path, size, modification time).
json result_settings(const ReconstructOptions& o) {
  const ProjectorSchedule& s = o.schedule;
  return json{{"checkpoint", file_stamp(o.checkpoint)},
              {"network", o.network},
              {"steps", s.steps},
              {"w_avg_samples", s.w_avg_samples},
              {"truncation_psi", s.truncation_psi},
              {"initial_learning_rate", s.initial_learning_rate},
              {"initial_noise_factor", s.initial_noise_factor},
              {"lr_rampup_length", s.lr_rampup_length},
              {"lr_rampdown_length", s.lr_rampdown_length},
              {"noise_ramp_length", s.noise_ramp_length},
              {"regularize_noise_weight", s.regularize_noise_weight},
              {"l1_weight", s.l1_weight},
              {"w_stats_seed", s.w_stats_seed},
              {"lpips_vgg", o.lpips_vgg.empty() ? std::string("off") : file_stamp(o.lpips_vgg)},
              {"id_weight", o.id_weight},
              {"face_api", o.id_weight > 0 ? file_stamp(face_api_manifest(o.face_api)) : std::string("off")},
              {"crop_resolution", o.crop_resolution},
              {"model", o.model_name},
              {"model_digest", face_model_digest(o.model_name, o.model)},
              {"landmarks", o.landmarks.name},
              {"fit", fit_settings_text(o.fit)},
              {"recon_weights", o.recon_weights.empty() ? std::string("off") : file_stamp(o.recon_weights)},
              {"seed", o.seed}};
}

// The part of result_settings that decides whether a face is found (no_face).
std::string geometry_digest(const json& settings) {
  json g;
  for (const char* key : {"model", "model_digest", "landmarks", "fit", "recon_weights"}) g[key] = settings.at(key);
  return job_settings_digest(g);
}

// A temporary folder of item `name` (".partial-<name>-<pid>[-old]"), exactly: another item's name may extend this
// one's ("a" and "a-1"), and its folder may belong to a part running now.
bool is_partial_folder_of(const std::string& file_name, const std::string& name) {
  const std::string prefix = ".partial-" + name + "-";
  if (file_name.rfind(prefix, 0) != 0) return false;
  std::string rest = file_name.substr(prefix.size());
  if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, "-old") == 0) rest.resize(rest.size() - 4);
  return !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Threads for the per-photo CPU stages (decoding, landmarks, fit; rendering and encoding the outputs).
int io_workers(const ReconstructOptions& o) { return o.io_threads > 0 ? o.io_threads : hardware_workers(); }

// A photo ready for projection.
struct Prepared {
  InputItem item;
  at::Tensor image;        // [3, H, W] float 0-255 (CPU)
  at::Tensor coeffs;       // [1, K]
  at::Tensor crop;         // [1, 3] original frame
  at::Tensor target_crop;  // [3, Rc, Rc] float 0-255 (CPU)
  at::Tensor chip_to_crop; // [2, 3] float64: dlib chip pixel -> crop-frame pixel (identity term only)
  double residual_px = 0;
};

struct Outcome {
  std::string status, message;
};

class Reconstructor {
 public:
  explicit Reconstructor(const ReconstructOptions& o)
      : o_(o), device_(o.device), renderer_(o.model), layout_(f3::CoeffLayout::for_model(o.model)) {
    auto& log = log::get("reconstruct");
    models::NetworkWeights weights;
    const auto all = models::read_weight_file(o.checkpoint);
    auto it = all.find(o.network);
    // The default falls back to G (a weight file without an EMA copy); a group named on purpose must exist.
    if (it == all.end() && o.network == "G_ema") it = all.find("G");
    if (it == all.end()) {
      std::string groups;
      for (const auto& [name, net] : all) groups += (groups.empty() ? "" : ", ") + name;
      throw DataError(fmt::format("{}: no network group '{}'{} (the file holds: {})", o.checkpoint.string(), o.network,
                                  o.network == "G_ema" ? " or 'G'" : "", groups.empty() ? "none" : groups));
    }
    if (it->first != o.network) log.info("{}: no {}; projecting into /{}", o.checkpoint.string(), o.network, it->first);
    auto module = sg::build_and_load(it->second, fmt::format("{} /{}", o.checkpoint.string(), it->first));
    G_ = std::dynamic_pointer_cast<sg::Generator>(module);
    FACETEX_CHECK_DATA(G_ != nullptr, "{} /{}: not a Generator", o.checkpoint.string(), it->first);
    G_->eval();
    for (auto& p : G_->parameters()) p.set_requires_grad(false);
    G_->to(device_);
    renderer_.to(device_);
    for (const auto& m : G_->synthesis->modules(/*include_self=*/false)) {
      auto layer = std::dynamic_pointer_cast<sg::SynthesisLayer>(m);
      if (layer && layer->noise_const.defined()) noise_layers_.push_back(layer);
    }
    if (!o.recon_weights.empty()) recon_ = models::aux::load_recon_net(o.recon_weights);
    // VGG16's weights frozen, except for the public baseline: a loaded TorchScript module's parameters require grad
    // as saved (vgg16.pt's do), and the public projector's one backward computes their gradients every step.
    if (!o.lpips_vgg.empty()) {
      lpips_ = std::make_unique<LpipsTerm>(o.lpips_vgg, device_, o.lpips_batch, /*freeze_weights=*/!o.public_baseline);
    }
    // One landmark source per I/O worker (dlib's detector and predictor are not shared between threads). The first
    // is made here, so that a broken predictor stops the job before any work instead of failing every photo; the
    // others by their worker on its first photo (loading dlib's predictor takes a while; min(B, workers) are used).
    landmarks_.resize(static_cast<size_t>(io_workers(o)));
    landmarks_[0] = o.landmarks.make();
    if (o.id_weight > 0) {
      const fs::path manifest = face_api_manifest(o.face_api);
      FACETEX_CHECK_USAGE(!manifest.empty(), "--id-weight {}: face-api weights not found at {}", o.id_weight,
                          o.face_api.string());
      id_net_ = std::make_unique<models::aux::DlibFaceResNet>(manifest, device_);
      id_manifest_ = manifest;
    }
    compute_w_stats();
    log.info("projector: G {}x{} texture, {} ws, {} noise maps; w_std {:.4f}; LPIPS {}; geometry {}",
             G_->config().img_resolution, G_->config().img_resolution, G_->num_ws(), noise_layers_.size(), w_std_,
             lpips_ ? "on (" + o.lpips_vgg.string() + ")" : std::string("OFF (no --lpips-vgg): loss = L1 + noise reg"),
             recon_ ? "ReconNet" : "landmark fit");
  }

  bool lpips() const { return lpips_ != nullptr; }

  // W statistics (spec §7.1 step 1): the mean and spread of mapped latents with truncation.
  void compute_w_stats() {
    at::NoGradGuard ng;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o_.schedule.w_stats_seed);
    const int64_t n = o_.schedule.w_avg_samples, zdim = G_->config().z_dim;
    std::vector<at::Tensor> ws;
    for (int64_t b0 = 0; b0 < n; b0 += 1000) {
      const int64_t b = std::min<int64_t>(1000, n - b0);
      const at::Tensor z = at::randn({b, zdim}, gen, at::TensorOptions().dtype(at::kFloat)).to(device_);
      sg::Truncation tr;
      tr.psi = o_.schedule.truncation_psi;
      ws.push_back(G_->mapping->forward(z, tr, /*skip_w_avg_update=*/true).select(1, 0).to(at::kDouble));
    }
    const at::Tensor w = at::cat(ws);
    w_avg_ = w.mean(0, true).to(at::kFloat);  // [1, w_dim]
    w_std_ = std::sqrt((w - w.mean(0, true)).square().sum().item<double>() / double(n));
  }
  static constexpr int kChip = models::aux::DlibFaceResNet::kChipSize;

  // The identity chips [B, 3, 150, 150] of crop-frame images [B, 3, Rc, Rc] (differentiable).
  at::Tensor id_chips(const at::Tensor& crops, const at::Tensor& chip_to_crop) const {
    return models::aux::sample_face_chips(crops, chip_to_crop.to(crops.device()), kChip);
  }

  // Decode + geometry on I/O worker `worker`. Returns the outcome for items that end here (bad_input, no_face), else
  // fills `p`.
  std::optional<Outcome> prepare(const InputItem& item, Prepared& p, int worker) {
    std::string bytes;
    if (item.shard) {
      item.shard->read_row(item.row, bytes);
    } else {
      std::error_code ec;
      const auto size = fs::file_size(item.file, ec);
      if (ec) return Outcome{"bad_input", fmt::format("cannot read: {}", ec.message())};
      (void)size;
      std::ifstream f(item.file, std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      bytes = ss.str();
    }
    data::Image img;
    if (item.shard && item.shard->header().storage == data::Storage::kRaw) {
      const int r = static_cast<int>(item.shard->header().resolution);
      img.height = img.width = r;
      img.rgb.assign(bytes.begin(), bytes.end());
    } else {
      const auto dims = image_header_size(bytes);
      if (!dims) return Outcome{"bad_input", bytes.empty() ? "empty file" : "not a PNG or JPEG image"};
      if (dims->first * dims->second > o_.max_pixels || dims->first <= 0 || dims->second <= 0) {
        return Outcome{"bad_input", fmt::format("{}x{} pixels exceeds --max-pixels {}", dims->first, dims->second,
                                                o_.max_pixels)};
      }
      try {
        img = data::decode_image(bytes, item.source);
      } catch (const DataError& e) {
        // The manifest line names the input already: the message without the decoder's "<input>: " prefix.
        const std::string message = e.what(), prefix = item.source + ": ";
        return Outcome{"bad_input", message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message};
      }
    }
    const int h = img.height, w = img.width;
    LandmarkQuery q{img.rgb.data(), h, w, item.shard, item.row, item.source};  // shard rows: their annotations too
    std::unique_ptr<LandmarkSource>& source = landmarks_[static_cast<size_t>(worker)];
    if (!source) source = o_.landmarks.make();
    const auto lm = source->landmarks(q);
    if (!lm) {
      return Outcome{"no_face", o_.landmarks.needs_annotated_shards ? "annotated without a face (/valid = 0)"
                                                                     : "no face detected"};
    }
    at::Tensor lm68 = at::empty({1, 68, 2}, at::kFloat);
    std::memcpy(lm68.data_ptr<float>(), lm->data(), sizeof(float) * 136);
    const at::Tensor face = at::ones({1}, at::kBool);
    p.item = item;
    p.image = at::from_blob(img.rgb.data(), {h, w, 3}, at::kByte).permute({2, 0, 1}).to(at::kFloat).contiguous();
    f3::LandmarkFit fit = recon_ ? recon_geometry(*recon_, o_.model, p.image.unsqueeze(0), lm68, face, o_.fit.camera)
                                 : f3::fit_landmarks(o_.model, lm68, face, h, w, o_.fit);
    if (!fit.valid[0].item<bool>()) return Outcome{"no_face", "face found but the geometry fit is degenerate"};
    p.coeffs = fit.coeffs.to(at::kFloat);
    p.crop = fit.crop.to(at::kFloat);
    p.residual_px = fit.residual_px[0].item<double>();
    f3::CropProtocol big;
    big.crop_size = o_.crop_resolution;
    big.rescale_factor = o_.fit.camera.crop.rescale_factor * o_.crop_resolution / double(o_.fit.camera.crop.crop_size);
    const f3::AlignedCrop a =
        f3::align_faces(p.image.unsqueeze(0), fit.lm5, f3::model_reference_lm3d(o_.model).to(at::kCPU), face, big);
    if (!a.valid[0].item<bool>()) return Outcome{"no_face", "face found but the alignment is degenerate"};
    p.target_crop = a.crop[0].clamp(0, 255).contiguous();
    if (id_net_) {
      // dlib's chip geometry from the original landmarks; its corners mapped into the crop frame (a scale and a
      // shift, so the map stays affine).
      const models::aux::FaceChipGeometry g = models::aux::face_chip_geometry(*lm, kChip, 0.25);
      const at::Tensor m = at::tensor(std::vector<double>(g.m, g.m + 6), at::kDouble).view({2, 3});
      const at::Tensor corners = at::tensor({0.0, 0.0, 1.0, double(kChip - 1), 0.0, 1.0, 0.0, double(kChip - 1), 1.0},
                                            at::kDouble).view({3, 3});
      const at::Tensor img_pts = at::matmul(corners, m.t()).unsqueeze(0);  // [1, 3, 2]
      const at::Tensor c = f3::image_to_crop(img_pts, a.bbox, big)[0].to(at::kDouble);
      const at::Tensor o0 = c[0], ex = (c[1] - c[0]) / double(kChip - 1), ey = (c[2] - c[0]) / double(kChip - 1);
      p.chip_to_crop = at::stack({ex, ey, o0}, 1).contiguous();  // [2, 3]
    }
    return std::nullopt;
  }

  // The crop frame's box: the 224 protocol crop scaled to crop_resolution.
  at::Tensor crop_frame_boxes(int64_t b) const {
    const double k = double(o_.crop_resolution) / double(o_.fit.camera.crop.crop_size);
    return at::tensor({0.0f, 0.0f, float(o_.fit.camera.crop.rescale_factor * k)}).view({1, 3}).repeat({b, 1});
  }

  struct Projection {
    at::Tensor texture;  // [B, 3, T, T] 0-255
    at::Tensor w;        // [B, w_dim]
    std::vector<double> final_loss;
  };

  Projection project(const std::vector<Prepared>& items) {
    const int64_t B = static_cast<int64_t>(items.size());
    const ProjectorSchedule& s = o_.schedule;
    if (o_.public_baseline) compute_w_stats();  // the public projector computes them for every photo
    const auto fopt = at::TensorOptions().dtype(at::kFloat);
    std::vector<at::Generator> gens;
    for (const auto& p : items) gens.push_back(item_generator(o_.seed, p.item.index));
    // Variables: w (init w_avg) and one noise map per layer and image, N(0, 1) from the image's generator.
    at::Tensor w_opt = w_avg_.repeat({B, 1}).clone().set_requires_grad(true);
    std::vector<at::Tensor> noise;
    for (const auto& layer : noise_layers_) {
      const int64_t r = layer->noise_const.size(0);
      std::vector<at::Tensor> per;
      for (auto& g : gens) per.push_back(at::randn({1, 1, r, r}, g, fopt));
      noise.push_back(at::cat(per).to(device_).set_requires_grad(true));
    }
    std::vector<at::Tensor> params{w_opt};
    params.insert(params.end(), noise.begin(), noise.end());
    std::vector<at::Tensor> m1, m2;
    for (const auto& p : params) {
      m1.push_back(at::zeros_like(p));
      m2.push_back(at::zeros_like(p));
    }
    std::vector<at::Tensor> targets, coeff_rows;
    for (const auto& p : items) {
      targets.push_back(p.target_crop.unsqueeze(0));
      coeff_rows.push_back(p.coeffs);
    }
    const at::Tensor target = at::cat(targets).to(device_), coeffs = at::cat(coeff_rows).to(device_);
    const at::Tensor boxes = crop_frame_boxes(B).to(device_);
    // The geometry is fixed during the projection: pose, rasterisation and each pixel's UV position once per batch;
    // every step only samples the new textures.
    // (The public baseline rasterises every step, as the public projector's renderer does.)
    const f3::UvSampling view =
        o_.public_baseline ? f3::UvSampling() : renderer_.sampling(coeffs, boxes, o_.crop_resolution);
    const at::Tensor target_feat = lpips_ ? lpips_->target_features(target) : at::Tensor();
    at::Tensor chip_maps, target_desc;
    if (id_net_) {
      std::vector<at::Tensor> maps;
      for (const auto& p : items) maps.push_back(p.chip_to_crop.unsqueeze(0));
      chip_maps = at::cat(maps);
      at::NoGradGuard ng;
      target_desc = id_net_->descriptor(id_chips(target, chip_maps));
    }
    for (size_t i = 0; i < noise.size(); ++i) noise_layers_[i]->noise_override = noise[i];
    sg::SynthesisOptions so;
    so.noise_mode = sg::NoiseMode::kConst;
    so.fused_modconv = modconv_grouped(o_.modconv, B);
    const int64_t wdim = w_opt.size(1), num_ws = G_->num_ws();
    std::vector<double> last(static_cast<size_t>(B), 0.0);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int step = 0; step < s.steps; ++step) {
      const double t = double(step) / s.steps;
      const double wns = projector_w_noise_scale(s, w_std_, t);
      const double lr = projector_learning_rate(s, t);
      std::vector<at::Tensor> wn;
      for (auto& g : gens) wn.push_back(at::randn({1, wdim}, g, fopt));
      // Non-blocking: a blocking copy would make the host wait for the previous step every step (the driver stages
      // the pageable source before the call returns).
      const at::Tensor w_noise = at::cat(wn).to(fopt.device(device_), /*non_blocking=*/true) * wns;
      const at::Tensor ws = (w_opt + w_noise).unsqueeze(1).expand({B, num_ws, wdim});
      const at::Tensor T = (G_->synthesis->forward(ws, so) + 1) * (255.0 / 2);
      const f3::Rendered r = o_.public_baseline ? renderer_.render(T, coeffs, boxes, o_.crop_resolution)
                                                : f3::sample_uv_texture(T, view);
      const at::Tensor synth = target * (1 - r.mask) + r.mask * r.rgb;
      at::Tensor loss_i = s.l1_weight * (synth - target).abs().mean({1, 2, 3});
      // LPIPS: VGG16 in chunks with its own backward to the composites (only the image gradient is computed), or —
      // the public baseline — in the one graph, whose backward also reaches VGG16's weights.
      const bool lpips_chunks = lpips_ && !o_.public_baseline;
      at::Tensor lpips_dist, lpips_grad;
      if (lpips_chunks) lpips_dist = lpips_->distance_with_gradient(synth, target_feat, lpips_grad);
      if (lpips_ && !lpips_chunks) loss_i = loss_i + lpips_->distance(synth, target_feat);
      if (id_net_) {
        const at::Tensor desc = id_net_->descriptor_differentiable(id_chips(synth, chip_maps));
        loss_i = loss_i + o_.id_weight * (1 - at::cosine_similarity(desc, target_desc, 1));
      }
      at::Tensor reg = at::zeros({B}, w_opt.options().requires_grad(false));
      for (const auto& n : noise) reg = reg + noise_regularizer(n);
      loss_i = loss_i + s.regularize_noise_weight * reg;
      for (const auto& p : params) p.mutable_grad() = at::Tensor();
      if (lpips_chunks) {  // the other terms and LPIPS's gradient at synth, in one backward through renderer and G
        torch::autograd::backward({loss_i.sum(), synth}, {at::ones({}, loss_i.options()), lpips_grad});
        loss_i = loss_i.detach() + lpips_dist;
      } else {
        loss_i.sum().backward();
      }
      {
        at::NoGradGuard ng;
        const double bc1 = 1 - std::pow(b1, step + 1), bc2 = 1 - std::pow(b2, step + 1);
        for (size_t i = 0; i < params.size(); ++i) {
          at::Tensor g = params[i].grad();
          if (!g.defined()) continue;
          m1[i].mul_(b1).add_(g, 1 - b1);
          m2[i].mul_(b2).addcmul_(g, g, 1 - b2);
          const at::Tensor denom = (m2[i] / bc2).sqrt_().add_(eps);
          params[i].addcdiv_(m1[i], denom, -lr / bc1);
        }
        for (auto& n : noise) {  // renormalise each image's maps
          n.sub_(n.mean({1, 2, 3}, true));
          n.mul_(n.square().mean({1, 2, 3}, true).rsqrt());
        }
      }
      if (step == s.steps - 1) {
        const at::Tensor lc = loss_i.detach().to(at::kCPU, at::kDouble);
        for (int64_t i = 0; i < B; ++i) last[size_t(i)] = lc[i].item<double>();
      }
    }
    Projection out;
    {
      at::NoGradGuard ng;
      const at::Tensor ws = w_opt.detach().unsqueeze(1).expand({B, num_ws, wdim});
      out.texture = ((G_->synthesis->forward(ws, so) + 1) * (255.0 / 2)).clamp(0, 255).to(at::kCPU);
    }
    for (auto& layer : noise_layers_) layer->noise_override = at::Tensor();
    out.w = w_opt.detach().to(at::kCPU);
    out.final_loss = last;
    return out;
  }

  // Writes OUT/<name>/ through a temporary folder.
  void write_item(const Prepared& p, const at::Tensor& texture, const at::Tensor& w, double final_loss,
                  double seconds) {
    at::NoGradGuard ng;
    const fs::path final_dir = o_.out / p.item.name;
    const fs::path tmp = o_.out / fmt::format(".partial-{}-{}", p.item.name, ::getpid());
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp);
    const at::Tensor T = texture.unsqueeze(0).to(device_);  // [1, 3, t, t] 0-255
    const int64_t H = p.image.size(1), W = p.image.size(2), side = std::max(H, W);
    const int64_t rc = o_.crop_resolution;
    // Full frame (the target's own camera) and crop frame.
    const f3::Rendered full = renderer_.render(T, p.coeffs.to(device_), p.crop.to(device_), side);
    const at::Tensor full_rgb = full.rgb[0].narrow(1, 0, H).narrow(2, 0, W).to(at::kCPU);
    const at::Tensor full_mask = full.mask[0].narrow(1, 0, H).narrow(2, 0, W).to(at::kCPU);
    const at::Tensor composed = p.image * (1 - full_mask) + full_mask * full_rgb;
    const at::Tensor boxes = crop_frame_boxes(1).to(device_);
    const f3::Rendered crop = renderer_.render(T, p.coeffs.to(device_), boxes, rc);
    const at::Tensor crop_rgb = crop.rgb[0].to(at::kCPU), crop_mask = crop.mask[0].to(at::kCPU);
    const at::Tensor composed_crop = p.target_crop * (1 - crop_mask) + crop_mask * crop_rgb;
    json identity = {{"weight", o_.id_weight}};
    if (id_net_) {
      // The final composite (no w-noise) against the target, both through the same chip sampler.
      const at::Tensor crops = at::stack({composed_crop, p.target_crop}).to(device_);
      const at::Tensor chips = id_chips(crops, at::stack({p.chip_to_crop, p.chip_to_crop}));
      const at::Tensor d = id_net_->descriptor(chips).to(at::kCPU, at::kDouble);
      write_bytes(tmp / "id_chip_composed.png", image_png(chips[0]));
      write_bytes(tmp / "id_chip_target.png", image_png(chips[1]));
      identity["distance"] = 1 - at::cosine_similarity(d[0], d[1], 0).item<double>();
      identity["euclidean"] = (d[0] - d[1]).norm().item<double>();
      identity["face_api"] = id_manifest_.string();
    } else {
      identity["note"] = "off (--id-weight 0)";
    }
    at::Tensor rot = p.coeffs.clone();
    rot[0][layout_.id + layout_.exp + layout_.tex + 1] = 0.5;  // yaw
    const f3::Rendered rotated = renderer_.render(T, rot.to(device_), boxes, rc);
    write_bytes(tmp / "proj_tex.png", image_png(texture));
    write_bytes(tmp / "proj_composed.png", image_png(composed));
    write_bytes(tmp / "proj_composed_crop.png", image_png(composed_crop));
    write_bytes(tmp / "target.png", image_png(p.image));
    write_bytes(tmp / "target_crop.png", image_png(p.target_crop));
    write_bytes(tmp / "mask.png", image_png(full_mask * 255));
    write_bytes(tmp / "mask_crop.png", image_png(crop_mask * 255));
    write_bytes(tmp / "rendered_rot.png", image_png((rotated.rgb[0] * rotated.mask[0]).to(at::kCPU)));
    {  // project_single_texture.py's projected_w.npz: key w, (1, num_ws, w_dim) float32 — the W-space w broadcast
      const at::Tensor ws = w.detach().to(at::kCPU, at::kFloat).reshape({1, 1, -1}).expand({1, G_->num_ws(), w.numel()})
                                .contiguous();
      write_bytes(tmp / "projected_w.npz", npz_archive({{"w", npy_float32(ws.data_ptr<float>(), ws.sizes().vec())}}));
    }
    const f3::PosedFace posed = f3::pose_face(o_.model, f3::split_coeffs(p.coeffs, layout_));
    f3::write_textured_obj(tmp, "proj_model", posed.vertices[0], o_.model.uv.to(at::kCPU), o_.model.triangles.to(at::kCPU),
                           texture.round().to(at::kByte));
    // Scores: full frame (spec §7.1 step 6) and the masked crop metrics of §9.1 (0-1 units).
    const at::Tensor t01 = p.target_crop / 255, r01 = composed_crop / 255;
    const at::Tensor mt = t01 * crop_mask, mr = r01 * crop_mask;
    const double msum = crop_mask.sum().item<double>();
    json scores = {
        {"psnr", image_psnr(p.image, composed)},
        {"ssim", image_ssim(p.image, composed)},
        {"l1", (composed - p.image).abs().mean().item<double>()},
        {"crop_masked",
         {{"psnr", image_psnr(mt, mr)},
          {"ssim", image_ssim(mt, mr)},
          {"l1", msum > 0 ? (mt - mr).abs().sum().item<double>() / (3 * msum) : 0.0}}},
        {"final_loss", final_loss},
        {"identity_distance", identity.contains("distance") ? identity["distance"] : json(nullptr)}};
    const json& settings = settings_;
    const at::Tensor wc = w.contiguous();
    json result = {
        {"format", "facetex-reconstruct"},
        {"version", 1},
        {"input", p.item.source},
        {"name", p.item.name},
        {"index", p.item.index},
        {"image_size", {W, H}},
        {"scores", scores},
        {"lpips",
         lpips_ ? json(o_.lpips_vgg.string()) : json("off (no --lpips-vgg given): loss = 0.001*L1 + noise reg")},
        {"identity", identity},
        {"geometry",
         {{"source", recon_ ? "ReconNet " + o_.recon_weights.string() : std::string("dlib landmarks + landmark fit")},
          {"model", o_.model_name},
          {"fit_residual_px", p.residual_px},
          {"crop", std::vector<float>(p.crop.data_ptr<float>(), p.crop.data_ptr<float>() + 3)},
          {"coeffs", std::vector<float>(p.coeffs.data_ptr<float>(), p.coeffs.data_ptr<float>() + p.coeffs.numel())}}},
        {"w", std::vector<float>(wc.data_ptr<float>(), wc.data_ptr<float>() + wc.numel())},
        {"settings", settings},
        {"run_settings",  // no bearing on the outputs beyond float rounding
         {{"batch", o_.batch},
          {"modconv", modconv_path_name(o_.modconv)},
          {"lpips_batch", o_.lpips_batch},
          {"device", o_.device}}},
        {"settings_digest", job_settings_digest(settings)},
        {"seconds", seconds},
        {"created_by", fmt::format("facetex {} reconstruct", FACETEX_VERSION)}};
    write_bytes(tmp / "result.json", result.dump(2) + "\n");
    // The folder there — an incomplete one of a killed run, or one made with other settings (--overwrite) — moves aside
    // first and goes once the new one is in place: at every moment one complete folder or none is under the name.
    const fs::path old = tmp.string() + "-old";
    fs::remove_all(old, ec);
    if (fs::exists(final_dir)) {
      fs::rename(final_dir, old, ec);
      FACETEX_CHECK_RUNTIME(!ec, "{}: cannot move the earlier folder aside: {}", final_dir.string(), ec.message());
    }
    fs::rename(tmp, final_dir, ec);
    FACETEX_CHECK_RUNTIME(!ec, "{}: cannot rename into place: {}", final_dir.string(), ec.message());
    fs::remove_all(old, ec);
  }

 private:
  const ReconstructOptions& o_;
  at::Device device_;
  FaceRenderer renderer_;
  f3::CoeffLayout layout_;
  std::shared_ptr<sg::Generator> G_;
  std::vector<std::shared_ptr<sg::SynthesisLayer>> noise_layers_;
  std::shared_ptr<models::aux::ReconNet> recon_;
  std::unique_ptr<LpipsTerm> lpips_;
  std::vector<std::unique_ptr<LandmarkSource>> landmarks_;  // one per I/O worker
  std::unique_ptr<models::aux::DlibFaceResNet> id_net_;
  fs::path id_manifest_;
  const json settings_ = result_settings(o_);  // once: it digests the face model's tensors
  at::Tensor w_avg_;
  double w_std_ = 0;
};

std::vector<InputItem> list_inputs(const fs::path& inputs, std::shared_ptr<const data::Dataset>& dataset) {
  std::vector<InputItem> items;
  FACETEX_CHECK_DATA(fs::exists(inputs), "{}: no such input photo or folder", inputs.string());
  if (fs::is_regular_file(inputs / "dataset.json")) {
    dataset = data::Dataset::open(inputs, data::OnCorrupt::kSkip);
    for (const auto& shard : dataset->shards()) {
      for (int64_t r = 0; r < shard->count(); ++r) {
        InputItem it;
        it.source = shard->key(r);
        it.shard = shard.get();
        it.row = r;
        items.push_back(it);
      }
    }
    std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.source < b.source; });
  } else if (fs::is_regular_file(inputs)) {
    // One photo: the same job over a list of one (its outputs in OUT/<name>/, its line in the manifest).
    InputItem it;
    it.source = inputs.filename().string();
    it.file = inputs;
    items.push_back(it);
  } else {
    FACETEX_CHECK_DATA(fs::is_directory(inputs), "{}: not a photo, a folder of photos or a packed dataset",
                       inputs.string());
    // Shards or part manifests without dataset.json: a packed dataset whose parts are not merged, not photos.
    static const std::regex packed(R"((shard-\d+\.h5|dataset\.part-\d+-of-\d+\.json))");
    for (const auto& e : fs::directory_iterator(inputs)) {
      if (std::regex_match(e.path().filename().string(), packed)) data::read_dataset_manifest(inputs);  // throws
    }
    for (const auto& e : fs::recursive_directory_iterator(inputs, fs::directory_options::skip_permission_denied)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), inputs).generic_string();
      if (rel.empty() || rel[0] == '.' || rel.find("/.") != std::string::npos) continue;  // hidden files
      InputItem it;
      it.source = rel;
      it.file = e.path();
      items.push_back(it);
    }
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.source < b.source; });
  }
  FACETEX_CHECK_DATA(!items.empty(), "{}: nothing to reconstruct (no files in the folder, or a dataset without rows)",
                     inputs.string());
  std::vector<std::string> sources;
  for (const auto& it : items) sources.push_back(it.source);
  const std::vector<std::string> names = output_names(sources);
  for (size_t i = 0; i < items.size(); ++i) {
    items[i].index = static_cast<int64_t>(i);
    items[i].name = names[i];
  }
  return items;
}

}  // namespace

std::vector<std::string> output_names(const std::vector<std::string>& sources) {
  constexpr size_t kMaxName = 200;  // below NAME_MAX (255) with room for the writers' temporary suffixes
  auto stem_of = [](const std::string& s) {
    const auto slash = s.rfind('/');
    const auto dot = s.rfind('.');
    return (dot != std::string::npos && (slash == std::string::npos || dot > slash + 1)) ? s.substr(0, dot) : s;
  };
  auto count = [](const std::vector<std::string>& v) {
    std::map<std::string, int> uses;
    for (const auto& n : v) ++uses[n];
    return uses;
  };
  std::vector<std::string> names;
  for (const auto& s : sources) names.push_back(sanitize(stem_of(s)));
  auto uses = count(names);
  for (size_t i = 0; i < names.size(); ++i) {
    if (uses[names[i]] > 1) names[i] = sanitize(sources[i]);
  }
  uses = count(names);
  for (size_t i = 0; i < names.size(); ++i) {
    if (uses[names[i]] == 1 && names[i].size() <= kMaxName) continue;
    Fnv64 f;
    f.add(sources[i]);
    names[i] = names[i].substr(0, kMaxName - 17) + "-" + f.hex().substr(0, 8);
  }
  // Distinct sources with equal 32-bit digests, or a suffixed name equal to another input's plain one: the later
  // one gets its list position too (astronomically rare, and still the same for the same list).
  std::set<std::string> taken;
  for (size_t i = 0; i < names.size(); ++i) {
    while (!taken.insert(names[i]).second) names[i] += "-" + std::to_string(i);
  }
  return names;
}

ReconstructResult reconstruct(const ReconstructOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto& log = log::get("reconstruct");
  register_reconstruct_metrics();
  FACETEX_CHECK_USAGE(o.batch >= 1, "--batch must be >= 1");
  FACETEX_CHECK_USAGE(o.lpips_batch >= 1, "--lpips-batch must be >= 1");
  FACETEX_CHECK_USAGE(!o.public_baseline || o.batch == 1, "the public-projector baseline projects one photo at a time");
  FACETEX_CHECK_USAGE(o.schedule.steps >= 1, "--steps must be >= 1");
  FACETEX_CHECK_USAGE(o.schedule.w_avg_samples >= 2, "--w-avg-samples must be >= 2 (a standard deviation is taken)");
  FACETEX_CHECK_USAGE(o.schedule.regularize_noise_weight >= 0 && std::isfinite(o.schedule.regularize_noise_weight),
                      "--noise-weight must be >= 0");
  // Named files are checked before anything else, even when every input is finished and nothing would load them.
  FACETEX_CHECK_DATA(fs::is_regular_file(o.checkpoint), "{}: checkpoint not found", o.checkpoint.string());
  FACETEX_CHECK_DATA(o.lpips_vgg.empty() || fs::is_regular_file(o.lpips_vgg), "{}: LPIPS VGG16 file not found (--lpips-vgg)",
                     o.lpips_vgg.string());
  FACETEX_CHECK_USAGE(o.crop_resolution >= 16, "--crop-resolution must be >= 16");
  FACETEX_CHECK_USAGE(static_cast<bool>(o.landmarks.make), "reconstruct: no landmark source");
  FACETEX_CHECK_USAGE(o.id_weight >= 0 && std::isfinite(o.id_weight), "--id-weight must be >= 0");
  FACETEX_CHECK_USAGE(o.id_weight == 0 || !face_api_manifest(o.face_api).empty(),
                      "--id-weight {} needs the dlib face-recognition ResNet weights: no "
                      "face_recognition_model-weights_manifest.json at {} (or its model/ folder); give --face-api DIR "
                      "(scripts/fetch_assets.sh installs assets/face-api)",
                      o.id_weight, o.face_api.string());
  if (!o.recon_weights.empty()) {
    const f3::CoeffLayout l = f3::CoeffLayout::for_model(o.model);
    FACETEX_CHECK_USAGE(l.id == 80 && l.exp == 64 && l.tex == 80,
                        "--recon-weights: ReconNet outputs the 257 BFM coefficients; the face model '{}' has {}/{}/{}",
                        o.model_name, l.id, l.exp, l.tex);
  }
  cluster::install_preemption_handlers();
  std::shared_ptr<const data::Dataset> dataset;
  const std::vector<InputItem> all = list_inputs(o.inputs, dataset);
  FACETEX_CHECK_USAGE(!o.landmarks.needs_annotated_shards || dataset,
                      "--landmarks annotations reads each input's /coeffs + /crop: --inputs {} is not a packed dataset "
                      "of annotated shards (use --landmarks dlib for photos)",
                      o.inputs.string());
  if (o.landmarks.needs_annotated_shards) data::require_intact_annotations(*dataset, {"coeffs", "crop"});
  const Range mine = part_range(static_cast<int64_t>(all.size()), o.part);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot create output folder: {}", o.out.string(), ec.message());

  ReconstructResult res;
  res.inputs = mine.size();
  res.manifest_path = o.out / (o.part.whole() ? std::string("manifest.jsonl")
                                              : fmt::format("manifest.part-{}-of-{}.jsonl", o.part.index, o.part.count));
  // The earlier run's lines, by input.
  std::map<std::string, json> lines;
  if (fs::is_regular_file(res.manifest_path)) {
    std::istringstream in(read_file(res.manifest_path));
    std::string line;
    while (std::getline(in, line)) {
      try {
        json j = json::parse(line);
        lines[j.at("input").get<std::string>()] = j;
      } catch (const std::exception&) {
      }
    }
  }
  // What the outputs depend on (result_settings): a finished item made with other settings is not this job's result.
  const json settings = result_settings(o);
  const std::string digest = job_settings_digest(settings), geometry = geometry_digest(settings);
  std::vector<const InputItem*> pending;
  std::vector<const InputItem*> changed;  // finished with other settings
  int64_t retried = 0;                    // no_face / bad_input under other settings: tried again
  int64_t input_changed = 0;              // finished, but the input is another file now: done again
  const auto queue = [&](const InputItem& it) {
    pending.push_back(&it);
    // Stale temporary folders of this item (a killed run).
    for (const auto& e : fs::directory_iterator(o.out, ec)) {
      if (is_partial_folder_of(e.path().filename().string(), it.name)) fs::remove_all(e.path(), ec);
    }
  };
  for (int64_t i = mine.begin; i < mine.end; ++i) {
    const InputItem& it = all[static_cast<size_t>(i)];
    const fs::path result_file = o.out / it.name / "result.json";
    const bool folder_done = fs::is_regular_file(result_file);
    auto found = lines.find(it.source);
    const json* line = found == lines.end() ? nullptr : &found->second;
    const std::string status = line ? line->value("status", "") : "";
    // An input replaced since its line was written (another photo under the same name): its result is not this
    // input's. Lines without a stamp (an older facetex) are trusted.
    if (line && !line->value("input_stamp", "").empty() && line->value("input_stamp", "") != input_stamp(it)) {
      ++input_changed;
      queue(it);
      continue;
    }
    bool redo = !folder_done;
    if (folder_done) {
      std::string made_with = line && status == "ok" ? line->value("settings_digest", "") : "";
      if (made_with.empty()) {  // the manifest line is gone or older: the folder's record
        try {
          made_with = json::parse(read_file(result_file)).value("settings_digest", "");
        } catch (const std::exception&) {
        }
      }
      // Made by a facetex that recorded no settings: kept (nothing to compare).
      if (!made_with.empty() && made_with != digest) {
        changed.push_back(&it);
        redo = o.overwrite;
      }
      if (!redo) {
        if (status != "ok" || !line->contains("settings_digest")) {
          lines[it.source] = json{{"input", it.source}, {"name", it.name}, {"status", "ok"}, {"message", ""},
                                  {"settings_digest", made_with}};
        }
        ++res.skipped;
      }
    } else if (status == "no_face" || status == "bad_input") {
      // Final unless what decided it changed: for no_face the geometry settings (landmark source, model, fit), for
      // bad_input --max-pixels (the rest is the file's own fault).
      const bool same = status == "no_face" ? line->value("geometry_digest", geometry) == geometry
                                            : line->value("max_pixels", o.max_pixels) == o.max_pixels;
      redo = !same;
      if (same) ++res.skipped;
      else ++retried;
    }
    if (redo) queue(it);
  }
  if (!changed.empty()) {
    json then;
    try {
      then = json::parse(read_file(o.out / changed.front()->name / "result.json")).value("settings", json::object());
    } catch (const std::exception&) {
    }
    const std::string difference = job_settings_difference(then, settings);
    const std::string what = fmt::format("{} finished input{} in {} (first: {}) {} made with other settings — {}",
                                         changed.size(), changed.size() == 1 ? "" : "s", o.out.string(),
                                         changed.front()->source, changed.size() == 1 ? "was" : "were",
                                         difference.empty() ? "their settings digest differs" : difference);
    FACETEX_CHECK_USAGE(o.overwrite, "{}; give another --out, or --overwrite to replace them", what);
    log.warn("{}; --overwrite: they are reconstructed again", what);
  }
  if (retried > 0) log.info("{} inputs that ended no_face or bad_input under other settings are tried again", retried);
  if (input_changed > 0) {
    log.info("{} inputs changed since they were finished (size, modification time or row checksum): done again",
             input_changed);
  }
  auto write_manifest = [&]() {
    std::string text;
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      auto f = lines.find(all[static_cast<size_t>(i)].source);
      if (f != lines.end()) text += f->second.dump() + "\n";
    }
    write_file_atomic(res.manifest_path, text);
  };
  log.info("reconstruct: {} inputs in part {} ({} of {} in all), {} finished earlier, {} to do; batch {} (modulated "
           "convolutions {}), {} steps, crop {}^2, device {}",
           mine.size(), o.part.str(), mine.size(), all.size(), res.skipped, pending.size(), o.batch,
           modconv_path_name(o.modconv), o.schedule.steps, o.crop_resolution, o.device);
  if (pending.empty()) {
    write_manifest();
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
  }
  Reconstructor rec(o);
  res.lpips = rec.lpips();
  auto record = [&](const InputItem& it, const std::string& status, const std::string& message) {
    lines[it.source] = json{{"input", it.source},   {"name", it.name},
                            {"status", status},     {"message", message},
                            {"settings_digest", digest}, {"geometry_digest", geometry},
                            {"max_pixels", o.max_pixels}, {"input_stamp", input_stamp(it)}};
    facetex::metrics::counter("facetex_reconstruct_items_total", "Inputs finished by facetex reconstruct, by status",
                     {{"status", status}})
        .inc();
    if (status == "ok") ++res.ok;
    else if (status == "no_face") ++res.no_face;
    else if (status == "bad_input") ++res.bad_input;
    else ++res.error;
    if (status != "ok") log.warn("{}: {}: {}", it.source, status, message);
  };
  Progress progress("reconstruct", static_cast<int64_t>(pending.size()), "inputs", "reconstruct");
  const int io = io_workers(o);
  size_t next = 0;
  while (next < pending.size()) {
    // Fill the batch to B: the next inputs are prepared on the I/O workers; inputs that end early (bad input, no
    // face, error) are recorded, in input order, and more are taken.
    std::vector<Prepared> batch;
    while (next < pending.size() && static_cast<int>(batch.size()) < o.batch) {
      const size_t take = std::min(pending.size() - next, static_cast<size_t>(o.batch) - batch.size());
      const auto t_prepare = std::chrono::steady_clock::now();
      std::vector<Prepared> got(take);
      std::vector<std::optional<Outcome>> ended(take);
      for_each_index(static_cast<int64_t>(take), io, [&](int64_t k, int worker) {
        const size_t j = static_cast<size_t>(k);
        try {
          ended[j] = rec.prepare(*pending[next + j], got[j], worker);
        } catch (const std::exception& e) {
          ended[j] = Outcome{"error", e.what()};
        }
      });
      res.prepare_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_prepare).count();
      for (size_t j = 0; j < take; ++j) {
        if (ended[j]) {
          record(*pending[next + j], ended[j]->status, ended[j]->message);
          progress.advance();
        } else {
          batch.push_back(std::move(got[j]));
        }
      }
      next += take;
    }
    if (!batch.empty()) {
      const auto tp = std::chrono::steady_clock::now();
      std::optional<Reconstructor::Projection> proj;
      std::string failure;
      try {
        proj = rec.project(batch);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
      res.projection_seconds += secs;
      // The outputs of the batch, written on the I/O workers; recorded in input order.
      std::vector<Outcome> written(batch.size(), Outcome{"error", "projection failed: " + failure});
      const auto t_output = std::chrono::steady_clock::now();
      if (proj) {
        for_each_index(static_cast<int64_t>(batch.size()), io, [&](int64_t i, int) {
          const size_t j = static_cast<size_t>(i);
          try {
            rec.write_item(batch[j], proj->texture[i], proj->w[i], proj->final_loss[j], secs / double(batch.size()));
            written[j] = Outcome{"ok", ""};
          } catch (const std::exception& e) {
            written[j] = Outcome{"error", e.what()};
          }
        });
      }
      res.output_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t_output).count();
      for (size_t j = 0; j < batch.size(); ++j) {
        record(batch[j].item, written[j].status, written[j].message);
        progress.advance();
      }
    }
    write_manifest();
    if (cluster::preemption_requested() && next < pending.size()) {
      log.warn("preemption signal {}: the batch is written, stopping with {} inputs left",
               cluster::preemption_signal(), pending.size() - next);
      res.preempted = true;
      break;
    }
  }
  progress.finish();
  write_manifest();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace facetex::train
