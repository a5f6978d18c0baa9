// AugmentPipe: a reimplementation of StyleGAN2-ADA's training/augment.py (see augment_pipe.h). Every matrix is built
// with the float32 ATen operation sequence of the reference (the comments give the reference's expression where the
// order of operations matters for rounding), so that seeded CPU runs draw bit-identical matrices.
#include "train/augment_pipe.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <map>

#include "core/error.h"
#include "kernels/grid_sample.h"
#include "kernels/upfirdn2d.h"

namespace facetex::train {
namespace {

constexpr double kPi = 3.14159265358979323846;  // np.pi

// Where matrices are made: dtype/device, and the pipe's cache of constants on that device.
struct Maker {
  at::TensorOptions opt;
  AugmentPipe::ConstantCache& cache;
};

// The cache entry of (values, shape) on mk's dtype and device, made by make(key) on first use; returned by value (a
// reference could outlive a clear). Callers never modify it in place. The cache is emptied when it reaches
// kMaxConstants entries: the execute step's centring translation depends on the drawn padding, so its values vary
// from call to call.
constexpr size_t kMaxConstants = 4096;
template <class Make>
at::Tensor cached(const Maker& mk, std::vector<double> values, std::vector<int64_t> shape, const Make& make) {
  AugmentPipe::ConstantKey key{std::move(values), std::move(shape),
                               static_cast<int>(c10::typeMetaToScalarType(mk.opt.dtype())), mk.opt.device().str()};
  auto it = mk.cache.find(key);
  if (it != mk.cache.end()) return it->second;
  if (mk.cache.size() >= kMaxConstants) mk.cache.clear();
  at::Tensor t = make(std::get<0>(key), std::get<1>(key));
  return mk.cache.emplace(std::move(key), std::move(t)).first->second;
}

// A constant tensor of `shape` holding `values` (row-major), rounded from double to the dtype of `mk.opt`.
at::Tensor constant(const Maker& mk, std::vector<double> values, std::vector<int64_t> shape) {
  return cached(mk, std::move(values), std::move(shape), [&](const auto& v, const auto& s) {
    // non_blocking: a blocking host-to-GPU copy synchronises the stream; a pageable source is staged before the
    // call returns, so the temporary may go.
    return at::tensor(v, at::TensorOptions().dtype(at::kDouble)).to(mk.opt, /*non_blocking=*/true).reshape(s);
  });
}

// A constant tensor of `shape` filled with `value` (the reference's misc.constant(value, shape=...)). Its key (one
// value, a shape of more elements) cannot collide with a constant() of other contents.
at::Tensor filled(const Maker& mk, double value, std::vector<int64_t> shape) {
  return cached(mk, {value}, std::move(shape),
                [&](const auto& v, const auto& s) { return at::full(s, v[0], mk.opt); });
}

at::Tensor identity(int64_t n, const Maker& mk) {
  std::vector<double> values(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i * n + i)] = 1.0;
  return constant(mk, std::move(values), {n, n});
}

// One element of a matrix literal: a tensor (all tensors of one matrix share a shape) or a constant.
struct Elem {
  Elem(const at::Tensor& tensor) : t(tensor) {}  // NOLINT(google-explicit-constructor)
  Elem(double value) : v(value) {}               // NOLINT(google-explicit-constructor)
  Elem(int value) : v(value) {}                  // NOLINT(google-explicit-constructor)
  at::Tensor t;
  double v = 0.0;
};

// The reference's matrix(*rows): tensor elements are stacked along a new last axis (constants broadcast to the
// tensors' shape), giving [..., rows, cols]; a matrix of constants only is a plain [rows, cols] tensor. Constants
// are rounded to the dtype of `mk.opt` (float32 for the drawn matrices, like misc.constant) and cached on the device.
at::Tensor matrix(std::initializer_list<std::initializer_list<Elem>> rows, const Maker& mk) {
  const int64_t num_rows = static_cast<int64_t>(rows.size());
  const int64_t num_cols = static_cast<int64_t>(rows.begin()->size());
  const at::Tensor* ref = nullptr;
  for (const auto& row : rows) {
    for (const Elem& e : row) {
      if (e.t.defined() && ref == nullptr) ref = &e.t;
    }
  }
  if (ref == nullptr) {
    std::vector<double> values;
    for (const auto& row : rows) {
      for (const Elem& e : row) values.push_back(e.v);
    }
    return constant(mk, std::move(values), {num_rows, num_cols});
  }
  const Maker on_ref{ref->options(), mk.cache};
  std::vector<at::Tensor> elems;
  for (const auto& row : rows) {
    for (const Elem& e : row) elems.push_back(e.t.defined() ? e.t : filled(on_ref, e.v, ref->sizes().vec()));
  }
  std::vector<int64_t> shape = ref->sizes().vec();
  shape.push_back(num_rows);
  shape.push_back(num_cols);
  return at::stack(elems, -1).reshape(shape);
}

at::Tensor translate2d(const Elem& tx, const Elem& ty, const Maker& mk) {
  return matrix({{1, 0, tx}, {0, 1, ty}, {0, 0, 1}}, mk);
}
at::Tensor translate3d(const Elem& tx, const Elem& ty, const Elem& tz, const Maker& mk) {
  return matrix({{1, 0, 0, tx}, {0, 1, 0, ty}, {0, 0, 1, tz}, {0, 0, 0, 1}}, mk);
}
at::Tensor scale2d(const Elem& sx, const Elem& sy, const Maker& mk) {
  return matrix({{sx, 0, 0}, {0, sy, 0}, {0, 0, 1}}, mk);
}
at::Tensor scale3d(const Elem& sx, const Elem& sy, const Elem& sz, const Maker& mk) {
  return matrix({{sx, 0, 0, 0}, {0, sy, 0, 0}, {0, 0, sz, 0}, {0, 0, 0, 1}}, mk);
}
// rotate2d(theta) = [[cos θ, sin(-θ), 0], [sin θ, cos θ, 0], [0, 0, 1]].
at::Tensor rotate2d(const at::Tensor& theta, const Maker& mk) {
  return matrix({{at::cos(theta), at::sin(at::neg(theta)), 0}, {at::sin(theta), at::cos(theta), 0}, {0, 0, 1}}, mk);
}
// rotate3d(v, theta): rotation by theta about the unit axis v (Rodrigues), in the reference's operation order.
at::Tensor rotate3d(const at::Tensor& v, const at::Tensor& theta, const Maker& mk) {
  const at::Tensor vx = v.select(-1, 0), vy = v.select(-1, 1), vz = v.select(-1, 2);
  const at::Tensor s = at::sin(theta), c = at::cos(theta), cc = at::rsub(c, 1);
  return matrix({{vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0},
                 {vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0},
                 {vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0},
                 {0, 0, 0, 1}},
                mk);
}
// The reference's `1 / x` on a tensor is x.reciprocal() * 1.
at::Tensor inv(const at::Tensor& x) { return at::reciprocal(x); }

// `u * 2 - 1` as the reference writes it (u a uniform draw).
at::Tensor two_u_minus_1(const at::Tensor& u) { return at::sub(at::mul(u, 2), 1); }

// Threshold `multiplier * p` in float32, as `float(multiplier) * p_buffer` rounds in the reference.
double threshold(double multiplier, float p) { return static_cast<double>(static_cast<float>(multiplier) * p); }

const std::map<std::string, double AugmentOptions::*>& scalar_fields() {
  static const std::map<std::string, double AugmentOptions::*> fields = {
      {"xflip", &AugmentOptions::xflip},
      {"rotate90", &AugmentOptions::rotate90},
      {"xint", &AugmentOptions::xint},
      {"xint_max", &AugmentOptions::xint_max},
      {"scale", &AugmentOptions::scale},
      {"rotate", &AugmentOptions::rotate},
      {"aniso", &AugmentOptions::aniso},
      {"xfrac", &AugmentOptions::xfrac},
      {"scale_std", &AugmentOptions::scale_std},
      {"rotate_max", &AugmentOptions::rotate_max},
      {"aniso_std", &AugmentOptions::aniso_std},
      {"xfrac_std", &AugmentOptions::xfrac_std},
      {"brightness", &AugmentOptions::brightness},
      {"contrast", &AugmentOptions::contrast},
      {"lumaflip", &AugmentOptions::lumaflip},
      {"hue", &AugmentOptions::hue},
      {"saturation", &AugmentOptions::saturation},
      {"brightness_std", &AugmentOptions::brightness_std},
      {"contrast_std", &AugmentOptions::contrast_std},
      {"hue_max", &AugmentOptions::hue_max},
      {"saturation_std", &AugmentOptions::saturation_std},
      {"imgfilter", &AugmentOptions::imgfilter},
      {"imgfilter_std", &AugmentOptions::imgfilter_std},
      {"noise", &AugmentOptions::noise},
      {"cutout", &AugmentOptions::cutout},
      {"noise_std", &AugmentOptions::noise_std},
      {"cutout_size", &AugmentOptions::cutout_size},
  };
  return fields;
}

// Full 1-D convolution (numpy.convolve / scipy.signal.convolve 'full').
std::vector<double> convolve_full(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size() + b.size() - 1, 0.0);
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) out[i + j] += a[i] * b[j];
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Options.

AugmentOptions AugmentOptions::preset(const std::string& name) {
  AugmentOptions o;
  const auto blit = [&] { o.xflip = o.rotate90 = o.xint = 1; };
  const auto geom = [&] { o.scale = o.rotate = o.aniso = o.xfrac = 1; };
  const auto color = [&] { o.brightness = o.contrast = o.lumaflip = o.hue = o.saturation = 1; };
  if (name == "blit") {
    blit();
  } else if (name == "geom") {
    geom();
  } else if (name == "color") {
    color();
  } else if (name == "filter") {
    o.imgfilter = 1;
  } else if (name == "noise") {
    o.noise = 1;
  } else if (name == "cutout") {
    o.cutout = 1;
  } else if (name == "bg") {
    blit();
    geom();
  } else if (name == "bgc" || name == "bgcf" || name == "bgcfn" || name == "bgcfnc") {
    blit();
    geom();
    color();
    if (name.size() >= 4) o.imgfilter = 1;
    if (name.size() >= 5) o.noise = 1;
    if (name.size() >= 6) o.cutout = 1;
  } else {
    throw UsageError(fmt::format("unknown augment pipe '{}' (blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, "
                                 "bgcfn, bgcfnc)",
                                 name));
  }
  return o;
}

bool AugmentOptions::any_geometric() const {
  return xflip > 0 || rotate90 > 0 || xint > 0 || scale > 0 || rotate > 0 || aniso > 0 || xfrac > 0;
}

bool AugmentOptions::any_colour(int64_t num_channels) const {
  return brightness > 0 || contrast > 0 || lumaflip > 0 || (num_channels > 1 && (hue > 0 || saturation > 0));
}

nlohmann::json AugmentOptions::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, field] : scalar_fields()) j[key] = this->*field;
  j["imgfilter_bands"] = imgfilter_bands;
  return j;
}

AugmentOptions AugmentOptions::from_json(const nlohmann::json& j) {
  FACETEX_CHECK_USAGE(j.is_object(), "augment options must be a JSON object, got {}", j.dump());
  AugmentOptions o;
  for (const auto& [key, value] : j.items()) {
    if (key == "imgfilter_bands") {
      FACETEX_CHECK_USAGE(value.is_array(), "augment option imgfilter_bands must be a list, got {}", value.dump());
      o.imgfilter_bands = value.get<std::vector<double>>();
      continue;
    }
    const auto it = scalar_fields().find(key);
    FACETEX_CHECK_USAGE(it != scalar_fields().end(), "unknown augment option '{}'", key);
    FACETEX_CHECK_USAGE(value.is_number(), "augment option {} must be a number, got {}", key, value.dump());
    o.*(it->second) = value.get<double>();
  }
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Filters.

const std::vector<double>& sym6_coefficients() {
  static const std::vector<double> taps = {
      0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
      0.4910559419267466,   0.787641141030194,     0.3379294217276218,   -0.07263752278646252,
      -0.021060292512300564, 0.04472490177066578,  0.0017677118642428036, -0.007800708325034148};
  return taps;
}

at::Tensor make_imgfilter_bank() {
  const std::vector<double> lo = {-0.12940952255092145, 0.22414386804185735, 0.836516303737469,
                                  0.48296291314469025};  // wavelets['sym2'] = H(z)
  std::vector<double> hi = lo;                            // H(-z)
  for (size_t k = 1; k < hi.size(); k += 2) hi[k] = -hi[k];
  const auto reversed = [](std::vector<double> v) {
    std::reverse(v.begin(), v.end());
    return v;
  };
  std::vector<double> lo2 = convolve_full(lo, reversed(lo));  // H(z) H(z^-1) / 2
  std::vector<double> hi2 = convolve_full(hi, reversed(hi));  // H(-z) H(-z^-1) / 2
  for (double& x : lo2) x /= 2;
  for (double& x : hi2) x /= 2;

  const size_t bands = 4;
  std::vector<std::vector<double>> bank(bands, std::vector<double>{0.0});
  bank[0][0] = 1.0;  // np.eye(4, 1)
  for (size_t i = 1; i < bands; ++i) {
    for (auto& row : bank) {
      // Interleave with zeros and drop the last zero, then convolve with H(z) H(z^-1) / 2.
      std::vector<double> up(row.size() * 2 - 1, 0.0);
      for (size_t k = 0; k < row.size(); ++k) up[2 * k] = row[k];
      row = convolve_full(up, lo2);
    }
    const size_t width = bank[i].size();
    const size_t start = (width - hi2.size()) / 2;
    for (size_t k = 0; k < hi2.size(); ++k) bank[i][start + k] += hi2[k];
  }
  const int64_t taps = static_cast<int64_t>(bank[0].size());
  std::vector<float> flat;
  for (const auto& row : bank) flat.insert(flat.end(), row.begin(), row.end());
  return at::tensor(flat, at::kFloat).reshape({static_cast<int64_t>(bands), taps});
}

// ---------------------------------------------------------------------------------------------------------------
// The pipe.

AugmentPipe::AugmentPipe(AugmentOptions options, double p) : options_(std::move(options)) {
  set_p(p);
  Hz_geom_ = kernels::setup_filter(sym6_coefficients());
  Hz_fbank_ = make_imgfilter_bank();
  FACETEX_CHECK_USAGE(options_.imgfilter_bands.size() == static_cast<size_t>(Hz_fbank_.size(0)),
                      "augment option imgfilter_bands needs {} values, got {}", Hz_fbank_.size(0),
                      options_.imgfilter_bands.size());
}

void AugmentPipe::set_p(double p) {
  FACETEX_CHECK_USAGE(std::isfinite(p) && p >= 0.0, "augment probability p must be finite and >= 0, got {}", p);
  p_ = static_cast<float>(p);
}

const at::Tensor& AugmentPipe::buffer_on(const at::Tensor& buffer, std::optional<at::Tensor>& cache,
                                         const c10::Device& device, at::ScalarType dtype) const {
  if (!cache || cache->device() != device || cache->scalar_type() != dtype) cache = buffer.to(device, dtype);
  return *cache;
}

at::Tensor AugmentPipe::forward(const at::Tensor& images, AugmentDebug* debug) const {
  FACETEX_CHECK_RUNTIME(images.defined() && images.dim() == 4, "AugmentPipe: images must be [N, C, H, W], got {}",
                        images.defined() ? images.sizes().vec() : std::vector<int64_t>{});
  FACETEX_CHECK_RUNTIME(images.scalar_type() == at::kFloat || images.scalar_type() == at::kDouble,
                        "AugmentPipe: images must be float32 or float64, got {}",
                        c10::toString(images.scalar_type()));
  if (debug != nullptr) *debug = AugmentDebug{};
  at::Tensor x = images;
  if (options_.any_geometric()) x = geometric(x, debug);
  if (debug != nullptr) debug->images_geom = x;
  x = colour(x, debug);
  if (options_.imgfilter > 0) x = imgfilter(x);
  x = corruptions(x);
  return x;
}

at::Tensor AugmentPipe::geometric(const at::Tensor& images_in, AugmentDebug* debug) const {
  const AugmentOptions& o = options_;
  const int64_t batch = images_in.size(0), channels = images_in.size(1);
  const int64_t height = images_in.size(2), width = images_in.size(3);
  const at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat).device(images_in.device());
  const at::TensorOptions iopt = images_in.options().requires_grad(false);
  const Maker fm{fopt, constants_}, im{iopt, constants_};

  // ---- Draw the parameters (reference order; G_inv @ pixel_out = pixel_in). ----
  at::Tensor G = identity(3, fm);

  if (o.xflip > 0) {
    at::Tensor i = at::floor(at::rand({batch}, fopt) * 2);
    i = at::where(at::rand({batch}, fopt) < threshold(o.xflip, p_), i, at::zeros_like(i));
    G = at::matmul(G, scale2d(inv(at::rsub(i * 2, 1)), 1.0 / 1.0, fm));  // scale2d_inv(1 - 2*i, 1)
  }
  if (o.rotate90 > 0) {
    at::Tensor i = at::floor(at::rand({batch}, fopt) * 4);
    i = at::where(at::rand({batch}, fopt) < threshold(o.rotate90, p_), i, at::zeros_like(i));
    G = at::matmul(G, rotate2d(at::neg(i * (-kPi / 2)), fm));  // rotate2d_inv(-pi/2 * i)
  }
  if (o.xint > 0) {
    at::Tensor t = two_u_minus_1(at::rand({batch, 2}, fopt)) * o.xint_max;
    t = at::where(at::rand({batch, 1}, fopt) < threshold(o.xint, p_), t, at::zeros_like(t));
    G = at::matmul(G, translate2d(at::neg(at::round(t.select(1, 0) * width)),
                                  at::neg(at::round(t.select(1, 1) * height)), fm));  // translate2d_inv
  }
  if (o.scale > 0) {
    at::Tensor s = at::exp2(at::randn({batch}, fopt) * o.scale_std);
    s = at::where(at::rand({batch}, fopt) < threshold(o.scale, p_), s, at::ones_like(s));
    G = at::matmul(G, scale2d(inv(s), inv(s), fm));  // scale2d_inv(s, s)
  }
  // P(pre OR post) = p: p_rot = 1 - sqrt(clamp(1 - rotate * p, 0, 1)), in float32.
  const float p_rot = 1.0f - std::sqrt(std::clamp(1.0f - static_cast<float>(o.rotate) * p_, 0.0f, 1.0f));
  const auto draw_rotation = [&] {
    at::Tensor theta = (two_u_minus_1(at::rand({batch}, fopt)) * kPi) * o.rotate_max;
    theta = at::where(at::rand({batch}, fopt) < static_cast<double>(p_rot), theta, at::zeros_like(theta));
    return rotate2d(theta, fm);  // rotate2d_inv(-theta)
  };
  if (o.rotate > 0) G = at::matmul(G, draw_rotation());  // pre-rotation, before anisotropic scaling
  if (o.aniso > 0) {
    at::Tensor s = at::exp2(at::randn({batch}, fopt) * o.aniso_std);
    s = at::where(at::rand({batch}, fopt) < threshold(o.aniso, p_), s, at::ones_like(s));
    G = at::matmul(G, scale2d(inv(s), inv(inv(s)), fm));  // scale2d_inv(s, 1 / s)
  }
  if (o.rotate > 0) G = at::matmul(G, draw_rotation());  // post-rotation
  if (o.xfrac > 0) {
    at::Tensor t = at::randn({batch, 2}, fopt) * o.xfrac_std;
    t = at::where(at::rand({batch, 1}, fopt) < threshold(o.xfrac, p_), t, at::zeros_like(t));
    G = at::matmul(G, translate2d(at::neg(t.select(1, 0) * width), at::neg(t.select(1, 1) * height), fm));
  }
  if (debug != nullptr) {
    debug->geometric_ran = true;
    debug->G_inv_pixel = G;
  }

  // ---- Execute: pad, upsample, resample, downsample. ----
  at::Tensor images = images_in;
  G = G.to(iopt);  // a no-op for float32 images; float64 images run the rest in float64
  const at::Tensor& Hz = buffer_on(Hz_geom_, Hz_geom_cache_, images.device(), images.scalar_type());
  const int64_t hz_pad = Hz.size(0) / 4;

  // Padding: where the corners of the output land in the input, shared by the whole batch.
  const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
  const at::Tensor corners = matrix({{-cx, -cy, 1}, {cx, -cy, 1}, {cx, cy, 1}, {-cx, cy, 1}}, im);  // [idx, xyz]
  const at::Tensor cp = at::matmul(G, corners.t());                                                   // [N, xyz, idx]
  at::Tensor margin = cp.slice(1, 0, 2).permute({1, 0, 2}).flatten(1);                                // [xy, N*idx]
  margin = std::get<0>(at::cat({-margin, margin}).max(1));                                            // [x0, y0, x1, y1]
  const double pad2 = static_cast<double>(hz_pad * 2);
  margin = margin + matrix({{pad2 - cx, pad2 - cy, pad2 - cx, pad2 - cy}}, im).reshape({4});
  margin = at::maximum(margin, constant(im, {0, 0, 0, 0}, {4}));
  margin = at::minimum(margin, matrix({{width - 1.0, height - 1.0, width - 1.0, height - 1.0}}, im).reshape({4}));
  const at::Tensor m = margin.ceil().to(at::kInt).cpu();
  const int mx0 = m[0].item<int>(), my0 = m[1].item<int>(), mx1 = m[2].item<int>(), my1 = m[3].item<int>();

  images = at::reflection_pad2d(images, {mx0, mx1, my0, my1});
  G = at::matmul(translate2d((mx0 - mx1) / 2.0, (my0 - my1) / 2.0, im), G);

  images = kernels::upsample2d(images, Hz, 2);
  G = at::matmul(at::matmul(scale2d(2, 2, im), G), scale2d(1.0 / 2, 1.0 / 2, im));
  G = at::matmul(at::matmul(translate2d(-0.5, -0.5, im), G), translate2d(0.5, 0.5, im));

  const int64_t out_h = (height + hz_pad * 2) * 2, out_w = (width + hz_pad * 2) * 2;
  G = at::matmul(at::matmul(scale2d(2.0 / images.size(3), 2.0 / images.size(2), im), G),
                 scale2d(1.0 / (2.0 / out_w), 1.0 / (2.0 / out_h), im));  // scale2d_inv(2 / Wo, 2 / Ho)
  const at::Tensor grid = at::affine_grid_generator(G.slice(1, 0, 2), {batch, channels, out_h, out_w}, false);
  images = kernels::grid_sample(images, grid);

  images = kernels::downsample2d(images, Hz, 2, static_cast<int>(-hz_pad * 2), /*flip_filter=*/true);
  if (debug != nullptr) {
    debug->margins = {mx0, mx1, my0, my1};
    debug->G_inv_grid = G;
  }
  return images;
}

at::Tensor AugmentPipe::colour(const at::Tensor& images, AugmentDebug* debug) const {
  const AugmentOptions& o = options_;
  const int64_t batch = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3);
  const at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat).device(images.device());
  const Maker fm{fopt, constants_};

  // ---- Draw the parameters (C @ colour_in = colour_out). ----
  const at::Tensor I4 = identity(4, fm);
  at::Tensor C = I4;
  if (o.brightness > 0) {
    at::Tensor b = at::randn({batch}, fopt) * o.brightness_std;
    b = at::where(at::rand({batch}, fopt) < threshold(o.brightness, p_), b, at::zeros_like(b));
    C = at::matmul(translate3d(b, b, b, fm), C);
  }
  if (o.contrast > 0) {
    at::Tensor c = at::exp2(at::randn({batch}, fopt) * o.contrast_std);
    c = at::where(at::rand({batch}, fopt) < threshold(o.contrast, p_), c, at::ones_like(c));
    C = at::matmul(scale3d(c, c, c, fm), C);
  }
  // Luma axis v = (1, 1, 1, 0) / sqrt(3).
  const float v3 = static_cast<float>(1.0 / std::sqrt(3.0));
  const at::Tensor v = constant(fm, {v3, v3, v3, 0.0}, {4});
  const at::Tensor vv = at::outer(v, v);
  if (o.lumaflip > 0) {
    at::Tensor i = at::floor(at::rand({batch, 1, 1}, fopt) * 2);
    i = at::where(at::rand({batch, 1, 1}, fopt) < threshold(o.lumaflip, p_), i, at::zeros_like(i));
    C = at::matmul(I4 - (vv * 2) * i, C);  // Householder reflection
  }
  if (o.hue > 0 && channels > 1) {
    at::Tensor theta = (two_u_minus_1(at::rand({batch}, fopt)) * kPi) * o.hue_max;
    theta = at::where(at::rand({batch}, fopt) < threshold(o.hue, p_), theta, at::zeros_like(theta));
    C = at::matmul(rotate3d(v, theta, fm), C);  // rotate around v
  }
  if (o.saturation > 0 && channels > 1) {
    at::Tensor s = at::exp2(at::randn({batch, 1, 1}, fopt) * o.saturation_std);
    s = at::where(at::rand({batch, 1, 1}, fopt) < threshold(o.saturation, p_), s, at::ones_like(s));
    C = at::matmul(vv + (I4 - vv) * s, C);
  }
  if (!o.any_colour(channels)) return images;
  if (debug != nullptr) {
    debug->colour_ran = true;
    debug->C = C;
  }

  // ---- Execute. ----
  const at::Tensor Cm = C.to(images.scalar_type());
  if (channels == 3) {
    const at::Tensor flat = images.reshape({batch, channels, height * width});
    return (at::matmul(Cm.slice(1, 0, 3).slice(2, 0, 3), flat) + Cm.slice(1, 0, 3).slice(2, 3, 4))
        .reshape({batch, channels, height, width});
  }
  FACETEX_CHECK_RUNTIME(channels == 1, "AugmentPipe: the colour stage needs RGB (3 channels) or L (1 channel) images, "
                                       "got {} channels",
                        channels);
  const at::Tensor Cl = Cm.slice(1, 0, 3).mean(1, /*keepdim=*/true);  // [N, 1, 4]
  const at::Tensor flat = images.reshape({batch, channels, height * width});
  return (flat * Cl.slice(2, 0, 3).sum(2, /*keepdim=*/true) + Cl.slice(2, 3, 4)).reshape({batch, channels, height, width});
}

at::Tensor AugmentPipe::imgfilter(const at::Tensor& images) const {
  const AugmentOptions& o = options_;
  const int64_t batch = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3);
  const at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat).device(images.device());
  const at::Tensor& fbank = buffer_on(Hz_fbank_, Hz_fbank_cache_, images.device(), at::kFloat);
  const int64_t num_bands = fbank.size(0);
  const at::Tensor expected_power =  // expected power spectrum (1/f)
      constant({fopt, constants_}, {10.0 / 13, 1.0 / 13, 1.0 / 13, 1.0 / 13}, {4});

  // Amplify each band with probability (imgfilter * p * band_strength).
  at::Tensor g = at::ones({batch, num_bands}, fopt);
  for (int64_t i = 0; i < num_bands; ++i) {
    const float band = static_cast<float>(o.imgfilter_bands[static_cast<size_t>(i)]);
    at::Tensor t_i = at::exp2(at::randn({batch}, fopt) * o.imgfilter_std);
    const double thr = static_cast<double>((static_cast<float>(o.imgfilter) * p_) * band);
    t_i = at::where(at::rand({batch}, fopt) < thr, t_i, at::ones_like(t_i));
    at::Tensor t = at::ones({batch, num_bands}, fopt);
    t.select(1, i).copy_(t_i);
    t = t / (expected_power * t.square()).sum(-1, /*keepdim=*/true).sqrt();  // normalise power
    g = g * t;
  }
  at::Tensor Hz_prime = at::matmul(g, fbank);                                            // [N, taps]
  Hz_prime = Hz_prime.unsqueeze(1).repeat({1, channels, 1}).reshape({batch * channels, 1, -1});
  Hz_prime = Hz_prime.to(images.scalar_type());
  const int64_t pad = fbank.size(1) / 2;
  FACETEX_CHECK_RUNTIME(height > pad && width > pad,
                        "AugmentPipe: imgfilter needs images larger than {} pixels (reflect padding), got {}x{}", pad,
                        height, width);
  at::Tensor x = images.reshape({1, batch * channels, height, width});
  x = at::reflection_pad2d(x, {pad, pad, pad, pad});
  const std::vector<int64_t> ones = {1, 1}, zeros = {0, 0};
  x = at::conv2d(x, Hz_prime.unsqueeze(2), at::Tensor(), ones, zeros, ones, batch * channels);
  x = at::conv2d(x, Hz_prime.unsqueeze(3), at::Tensor(), ones, zeros, ones, batch * channels);
  return x.reshape({batch, channels, height, width});
}

at::Tensor AugmentPipe::corruptions(const at::Tensor& images_in) const {
  const AugmentOptions& o = options_;
  at::Tensor images = images_in;
  const int64_t batch = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3);
  const at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat).device(images.device());

  if (o.noise > 0) {  // additive RGB noise
    at::Tensor sigma = at::randn({batch, 1, 1, 1}, fopt).abs() * o.noise_std;
    sigma = at::where(at::rand({batch, 1, 1, 1}, fopt) < threshold(o.noise, p_), sigma, at::zeros_like(sigma));
    images = images + (at::randn({batch, channels, height, width}, fopt) * sigma).to(images.scalar_type());
  }
  if (o.cutout > 0) {
    at::Tensor size = at::full({batch, 2, 1, 1, 1}, o.cutout_size, fopt);
    size = at::where(at::rand({batch, 1, 1, 1, 1}, fopt) < threshold(o.cutout, p_), size, at::zeros_like(size));
    const at::Tensor center = at::rand({batch, 2, 1, 1, 1}, fopt);
    const at::TensorOptions lopt = at::TensorOptions().dtype(at::kLong).device(images.device());
    const at::Tensor coord_x = at::arange(width, lopt).reshape({1, 1, 1, -1});
    const at::Tensor coord_y = at::arange(height, lopt).reshape({1, 1, -1, 1});
    const at::Tensor mask_x = ((coord_x + 0.5) / width - center.select(1, 0)).abs() >= size.select(1, 0) / 2;
    const at::Tensor mask_y = ((coord_y + 0.5) / height - center.select(1, 1)).abs() >= size.select(1, 1) / 2;
    images = images * at::logical_or(mask_x, mask_y).to(images.scalar_type());
  }
  return images;
}

}  // namespace facetex::train
