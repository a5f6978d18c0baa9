#include "train/generate.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/log.h"
#include "core/npy.h"
#include "core/progress.h"
#include "data/image_codec.h"
#include "models/aux/dfr_model.h"
#include "models/face3d/geometry.h"
#include "models/face3d/morphable_model.h"
#include "models/face3d/obj_export.h"
#include "models/stylegan2/factory.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "monitoring/metrics.h"
#include "train/face_renderer.h"
#include "train/job_settings.h"

namespace facetex::train {

namespace fs = std::filesystem;
namespace f3 = models::face3d;
namespace sg = models::stylegan2;

namespace {

constexpr int64_t kMaxSeeds = 10000000;  // a list, not a job: 40 MB

int64_t parse_seed_number(const std::string& piece, const std::string& whole) {
  FACETEX_CHECK_USAGE(!piece.empty() && piece.size() <= 10 && piece.find_first_not_of("0123456789") == std::string::npos,
                      "--seeds '{}': '{}' is not a seed (non-negative integer below 2^32); use e.g. 0-99 or 1,5,9",
                      whole, piece);
  const int64_t v = std::stoll(piece);
  FACETEX_CHECK_USAGE(v <= 0xFFFFFFFFLL, "--seeds '{}': {} is above 2^32 - 1", whole, piece);
  return v;
}

void require_file(const fs::path& path, const char* what) {
  FACETEX_CHECK_DATA(fs::is_regular_file(path), "{} '{}': no such file", what, path.string());
}

// The generator group `preferred` of a weight file; with `fallback` non-empty, that group when `preferred` is absent
// (a weight file holding only one of G and G_ema). The group used is returned in `used`.
std::shared_ptr<sg::Generator> load_generator(const fs::path& path, const char* what, const std::string& preferred,
                                              const std::string& fallback, std::string* used = nullptr) {
  require_file(path, what);
  auto weights = models::read_weight_file(path);
  const std::string group = weights.count(preferred) ? preferred
                            : !fallback.empty() && weights.count(fallback) ? fallback
                                                                           : "";
  if (group.empty()) {
    std::string groups;
    for (const auto& [name, net] : weights) groups += (groups.empty() ? "" : ", ") + name;
    throw DataError(fmt::format("{} '{}': no network group '{}'{} (the file holds: {})", what, path.string(),
                                preferred, fallback.empty() ? "" : " or '" + fallback + "'",
                                groups.empty() ? "none" : groups));
  }
  if (used) *used = group;
  auto G = std::dynamic_pointer_cast<sg::Generator>(sg::build_and_load(weights.at(group), path.string() + " /" + group));
  FACETEX_CHECK_DATA(G != nullptr, "{} '{}': /{} is not a Generator", what, path.string(), group);
  G->eval();  // no w_avg update
  for (auto& p : G->parameters(true)) p.set_requires_grad(false);
  return G;
}

// z rows of the seeds (float32, on `device`).
at::Tensor seed_latents(const std::vector<uint32_t>& seeds, int64_t z_dim, const c10::Device& device) {
  at::Tensor z = at::empty({static_cast<int64_t>(seeds.size()), z_dim}, at::kDouble);
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::vector<double> v = numpy_randn(seeds[i], z_dim);
    std::memcpy(z[static_cast<int64_t>(i)].data_ptr<double>(), v.data(), v.size() * sizeof(double));
  }
  return z.to(at::kFloat).to(device);
}

// Batched unless the noise is random: then each seed alone after at::manual_seed(seed), so its noise maps are the
// same whatever the batch; rows past `real` (drive's padding) then repeat the last real one instead of being
// synthesised again. Fused modulated convolution always (the reference picks it per batch size for FP16 layers,
// which would make batch 1 and batch B differ).
at::Tensor synthesize(sg::Generator& G, const at::Tensor& ws, const std::vector<uint32_t>& seeds, size_t real,
                      sg::NoiseMode noise) {
  sg::SynthesisOptions o;
  o.noise_mode = noise;
  o.fused_modconv = true;
  if (noise != sg::NoiseMode::kRandom) return G.synthesis->forward(ws, o);
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (i >= real) {
      parts.push_back(parts.back());
      continue;
    }
    at::manual_seed(seeds[i]);
    parts.push_back(G.synthesis->forward(ws.narrow(0, static_cast<int64_t>(i), 1), o));
  }
  return at::cat(parts, 0);
}

// [3, H, W] in [-1, 1] -> 8-bit RGB (x + 1) * 127.5, rounded and clamped.
data::Image to_image(const at::Tensor& chw) {
  const at::Tensor hwc = ((chw.detach().to(at::kFloat).cpu() + 1) * 127.5).round().clamp(0, 255).to(at::kByte)
                             .permute({1, 2, 0}).contiguous();
  data::Image img;
  img.height = static_cast<int>(hwc.size(0));
  img.width = static_cast<int>(hwc.size(1));
  img.rgb.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return img;
}

std::string stem_of(uint32_t seed) { return fmt::format("seed{:04d}", seed); }

bool all_exist(const fs::path& dir, const std::string& stem, std::initializer_list<const char*> suffixes) {
  for (const char* s : suffixes)
    if (!fs::exists(dir / (stem + s))) return false;
  return true;
}

// The settings every generate job's outputs depend on (besides its own files and values); not the device or part.
// A seed's bytes depend on --batch only through float rounding (batches are padded to it, see drive).
nlohmann::json common_settings(const GenerateCommon& c, const char* kind) {
  return nlohmann::json{{"kind", kind}, {"truncation_psi", c.truncation_psi}, {"noise_mode", sg::noise_mode_name(c.noise)}};
}

// Drives the batches: claims the output folder for `settings` (OUT/generate.json: a folder made with other settings
// is refused, since its seeds would be skipped as finished), skips finished seeds, calls `run` with up to `batch`
// pending seeds (padded to `batch`; `run` writes the first `real`), reports progress, stops between batches when asked.
template <typename Done, typename Run>
GenerateResult drive(const GenerateCommon& c, const char* label, const nlohmann::json& settings, Done done, Run run) {
  FACETEX_CHECK_USAGE(c.batch >= 1, "--batch must be at least 1, got {}", c.batch);
  fs::create_directories(c.out);
  claim_output_settings(c.out / "generate.json", "facetex-generate", settings,
                        "use another --out, or remove the folder to generate anew");
  // Progress on a dashboard: seeds written by this process (registered at 0, so that a task exports the family).
  auto& written = metrics::counter("facetex_generate_seeds_total", "Seeds whose files facetex generate wrote, by kind",
                                   {{"kind", settings.at("kind").get<std::string>()}});
  written.inc(0);
  GenerateResult r;
  std::vector<uint32_t> pending;
  for (uint32_t s : c.seeds) {
    if (done(s)) ++r.skipped;
    else pending.push_back(s);
  }
  Progress progress(label, static_cast<int64_t>(pending.size()), "seeds");
  for (size_t i = 0; i < pending.size(); i += static_cast<size_t>(c.batch)) {
    if (c.stop && c.stop()) {
      r.stopped = true;
      break;
    }
    std::vector<uint32_t> chunk(pending.begin() + static_cast<std::ptrdiff_t>(i),
                                pending.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min(pending.size(), i + static_cast<size_t>(c.batch))));
    // A short batch (the last of a part, the first after a resume) is padded to --batch with its last seed: batched
    // kernels round alike for one batch size, so a seed's files do not depend on which seeds share its batch.
    const size_t real = chunk.size();
    chunk.resize(static_cast<size_t>(c.batch), chunk.back());
    run(chunk, real);
    r.written += static_cast<int64_t>(real);
    written.inc(static_cast<double>(real));
    progress.advance(static_cast<int64_t>(real));
  }
  progress.finish();
  return r;
}

}  // namespace

std::vector<uint32_t> parse_seeds(const std::string& text) {
  FACETEX_CHECK_USAGE(!text.empty(), "--seeds is empty; use e.g. 0-99 or 1,5,9");
  std::vector<uint32_t> out;
  // Seeds already listed, as disjoint ranges lo -> hi (a set of every seed took 2.5 GB for 0-99999999).
  std::map<int64_t, int64_t> covered;
  const auto emit_new = [&](int64_t lo, int64_t hi) {
    auto it = covered.upper_bound(lo);
    if (it != covered.begin() && std::prev(it)->second >= lo) --it;  // a range reaching into [lo, hi]
    int64_t next = lo;
    for (; it != covered.end() && it->first <= hi; ++it) {
      for (int64_t s = next; s < it->first; ++s) out.push_back(static_cast<uint32_t>(s));
      next = std::max(next, it->second + 1);
    }
    for (int64_t s = next; s <= hi; ++s) out.push_back(static_cast<uint32_t>(s));
    // Merge [lo, hi] with every range it touches.
    int64_t new_lo = lo, new_hi = hi;
    auto first = covered.upper_bound(lo - 1);
    if (first != covered.begin() && std::prev(first)->second >= lo - 1) --first;
    auto last = first;
    for (; last != covered.end() && last->first <= hi + 1; ++last) {
      new_lo = std::min(new_lo, last->first);
      new_hi = std::max(new_hi, last->second);
    }
    covered.erase(first, last);
    covered.emplace(new_lo, new_hi);
  };
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string piece = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t dash = piece.find('-');
    int64_t lo, hi;
    if (dash == std::string::npos) {
      lo = hi = parse_seed_number(piece, text);
    } else {
      lo = parse_seed_number(piece.substr(0, dash), text);
      hi = parse_seed_number(piece.substr(dash + 1), text);
      FACETEX_CHECK_USAGE(lo <= hi, "--seeds '{}': the range '{}' is empty (start after end)", text, piece);
    }
    FACETEX_CHECK_USAGE(static_cast<int64_t>(out.size()) + (hi - lo + 1) <= kMaxSeeds,
                        "--seeds '{}': more than {} seeds; split the job", text, kMaxSeeds);
    emit_new(lo, hi);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<double> numpy_randn(uint32_t seed, int64_t n) {
  // RandomState(int) seeds MT19937 with init_genrand(seed), as std::mt19937(seed); random doubles take 53 bits of
  // two outputs; legacy_gauss is the polar method returning f*x2 first and caching f*x1.
  std::mt19937 mt(seed);
  const auto next_double = [&mt] {
    const uint32_t a = static_cast<uint32_t>(mt()) >> 5, b = static_cast<uint32_t>(mt()) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  };
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n));
  bool has_gauss = false;
  double gauss = 0;
  while (static_cast<int64_t>(out.size()) < n) {
    if (has_gauss) {
      out.push_back(gauss);
      has_gauss = false;
      continue;
    }
    double x1, x2, r2;
    do {
      x1 = 2.0 * next_double() - 1.0;
      x2 = 2.0 * next_double() - 1.0;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = std::sqrt(-2.0 * std::log(r2) / r2);
    gauss = f * x1;
    has_gauss = true;
    out.push_back(f * x2);
  }
  return out;
}

GenerateResult generate_textured(const TexturedOptions& o) {
  const GenerateCommon& c = o.common;
  require_file(o.face_model_mat, "face model");
  require_file(o.face_model_uv, "face model UVs");
  require_file(o.dfr, "--dfr");
  // generate_3d.py: G_ema of both pickles.
  auto G = load_generator(o.checkpoint, "--checkpoint", "G_ema", "G");
  auto G2 = load_generator(o.background_generator, "--background-generator", "G_ema", "G");
  auto dfr = models::aux::load_dfr_model(o.dfr);
  FACETEX_CHECK_DATA(G->config().z_dim == G2->config().z_dim,
                     "the texture G ('{}', z_dim {}) and the 2D generator ('{}', z_dim {}) must read the same z",
                     o.checkpoint.string(), G->config().z_dim, o.background_generator.string(), G2->config().z_dim);
  FACETEX_CHECK_DATA(dfr->num_ws() == G2->num_ws(), "--dfr '{}' reads {} ws but the 2D generator '{}' has {}",
                     o.dfr.string(), dfr->num_ws(), o.background_generator.string(), G2->num_ws());
  f3::MorphableModel model = f3::load_morphable_model(o.face_model_mat, o.face_model_uv);
  const f3::CoeffLayout layout = f3::CoeffLayout::for_model(model);
  FACETEX_CHECK_DATA(layout.total() == models::aux::kCoefficientCount,
                     "face model '{}': DFR predicts the Deep3DFaceRecon layout (80 identity / 64 expression / 80 "
                     "texture), the model has {} / {} / {}", o.face_model_mat.string(), layout.id, layout.exp,
                     layout.tex);
  const at::Tensor uv = model.uv.to(at::kFloat).cpu(), tri = model.triangles.cpu();
  FaceRenderer renderer(model);
  renderer.to(c.device);
  G->to(c.device);
  G2->to(c.device);
  dfr->to(c.device);
  const int64_t z_dim = G->config().z_dim;
  const int64_t res = o.render_resolution > 0 ? o.render_resolution : G->config().img_resolution;
  // The 224 crop filling the res x res image: s' = 224 / res, s = rescale / s' (camera.h).
  const f3::CropProtocol protocol;
  const double s = protocol.rescale_factor * static_cast<double>(res) / static_cast<double>(protocol.crop_size);
  const sg::Truncation trunc{c.truncation_psi, std::nullopt};

  const auto done = [&](uint32_t seed) {
    return all_exist(c.out, stem_of(seed), {".obj", ".mtl", ".png", "_front.png"});
  };
  const auto run = [&](const std::vector<uint32_t>& seeds, size_t real) {
    at::NoGradGuard no_grad;
    const int64_t b = static_cast<int64_t>(seeds.size());
    const at::Tensor z = seed_latents(seeds, z_dim, c.device);
    // Same z, no style mixing, the same truncation for both generators (generate_3d.py).
    const at::Tensor ws3 = G->mapping->forward(z, trunc, /*skip_w_avg_update=*/true);
    const at::Tensor ws2 = G2->mapping->forward(z, trunc, /*skip_w_avg_update=*/true);
    const at::Tensor tex = synthesize(*G, ws3, seeds, real, c.noise).to(at::kFloat);
    const at::Tensor p = dfr->forward(ws2).to(at::kFloat);
    const f3::PosedFace posed = f3::pose_face(renderer.model(), f3::split_coeffs(p, layout));
    const at::Tensor verts = posed.vertices.cpu();
    const at::Tensor tex01 = ((tex + 1) / 2).clamp(0, 1).cpu();
    // Front view: DFR's shape, angles and translation zeroed.
    at::Tensor front = p.clone();
    const int64_t angles_at = layout.id + layout.exp + layout.tex;
    front.narrow(1, angles_at, layout.angles).zero_();
    front.narrow(1, layout.total() - layout.trans, layout.trans).zero_();
    const at::Tensor bbox = at::tensor({0.0, 0.0, s}, p.options()).unsqueeze(0).expand({b, 3}).contiguous();
    const at::Tensor white = at::ones({b, 3, res, res}, p.options());
    const at::Tensor rendered = renderer.render_into(tex.clamp(-1, 1), front, bbox, white);
    for (int64_t i = 0; i < static_cast<int64_t>(real); ++i) {
      const std::string stem = stem_of(seeds[static_cast<size_t>(i)]);
      f3::write_textured_obj(c.out, stem, verts[i], uv, tri, tex01[i]);
      data::write_png((c.out / (stem + "_front.png")).string(), to_image(rendered[i]));
    }
  };
  nlohmann::json settings = common_settings(c, "textured");
  settings["checkpoint"] = file_stamp(o.checkpoint);
  settings["background_generator"] = file_stamp(o.background_generator);
  settings["dfr"] = file_stamp(o.dfr);
  settings["face_model"] = file_stamp(o.face_model_mat) + " : " + file_stamp(o.face_model_uv);
  settings["render_resolution"] = res;
  return drive(c, "generate textured", settings, done, run);
}

GenerateResult generate_pairs(const PairsOptions& o) {
  const GenerateCommon& c = o.common;
  FACETEX_CHECK_USAGE(o.style_mixing >= 0 && o.style_mixing <= 1, "--style-mixing must be in [0, 1], got {}",
                      o.style_mixing);
  std::string group;
  auto G = load_generator(o.generator, "--generator", o.network, o.network == "G" ? "G_ema" : "", &group);
  if (group != o.network) log::get("cli").info("{}: no {}; generating with /{}", o.generator.string(), o.network, group);
  G->to(c.device);
  const int64_t z_dim = G->config().z_dim, num_ws = G->num_ws();
  const sg::Truncation trunc{c.truncation_psi, std::nullopt};

  const auto done = [&](uint32_t seed) { return all_exist(c.out, stem_of(seed), {".png", ".npz"}); };
  const auto run = [&](const std::vector<uint32_t>& seeds, size_t real) {
    at::NoGradGuard no_grad;
    const int64_t b = static_cast<int64_t>(seeds.size());
    const at::Tensor z = seed_latents(seeds, z_dim, c.device);
    at::Tensor ws = G->mapping->forward(z, trunc, /*skip_w_avg_update=*/true);
    if (o.style_mixing > 0) {
      // Per seed, from a CPU generator seeded with the seed: cutoff ~ U{1..num_ws-1}, kept with probability
      // style_mixing (else num_ws: no mixing), then mixing_z ~ N(0, I).
      std::vector<int64_t> cutoffs;
      std::vector<at::Tensor> mixing;
      for (uint32_t seed : seeds) {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        int64_t cut = num_ws > 1 ? at::randint(1, num_ws, {1}, gen, at::kLong).item<int64_t>() : num_ws;
        if (at::rand({1}, gen, at::kFloat).item<float>() >= o.style_mixing) cut = num_ws;
        cutoffs.push_back(cut);
        mixing.push_back(at::randn({1, z_dim}, gen, at::kFloat));
      }
      const at::Tensor other = G->mapping->forward(at::cat(mixing, 0).to(c.device), trunc, true);
      for (int64_t i = 0; i < b; ++i) {
        const int64_t cut = cutoffs[static_cast<size_t>(i)];
        if (cut < num_ws) ws[i].narrow(0, cut, num_ws - cut).copy_(other[i].narrow(0, cut, num_ws - cut));
      }
    }
    const at::Tensor img = synthesize(*G, ws, seeds, real, c.noise);
    for (int64_t i = 0; i < static_cast<int64_t>(real); ++i) {
      const std::string stem = stem_of(seeds[static_cast<size_t>(i)]);
      data::write_png((c.out / (stem + ".png")).string(), to_image(img[i]));
      // Last: marks the pair complete. generate.py's .npz, key ws.
      const at::Tensor one = ws.narrow(0, i, 1).to(at::kCPU, at::kFloat).contiguous();
      write_file_atomic(c.out / (stem + ".npz"),
                        npz_archive({{"ws", npy_float32(one.data_ptr<float>(), one.sizes().vec())}}));
    }
  };
  nlohmann::json settings = common_settings(c, "pairs");
  settings["generator"] = file_stamp(o.generator);
  settings["network"] = group;
  settings["style_mixing"] = o.style_mixing;
  return drive(c, "generate pairs", settings, done, run);
}

}  // namespace facetex::train
