// ADA's augmentation pipeline (StyleGAN2-ADA training/augment.py, paper spec §4.6): random geometric transforms
// (pixel blitting and general geometric ones, executed as one resampling: reflect pad, 2x upsample with the sym6
// wavelet filter, bilinear grid_sample, 2x downsample), a random 4x4 colour matrix, and optionally image-space
// filtering, additive noise and cutout.
//
// Exactness: the random parameters are drawn with at::rand / at::randn on the images' device in exactly the
// reference's order, shapes and dtype (float32), and every matrix is built with the same float32 ATen operations in
// the same order. On the CPU (same generator, same LibTorch 1.13) a run seeded like the reference therefore draws
// the same G_inv and C as the Python pipe (bit-exact for the recorded parity vectors). The images then agree to
// float32 rounding (the sampler is facetex's differentiable grid_sample, not ATen's).
//
// Differentiability: every image operation is differentiable to second order with respect to the images (the
// sampler's backward is itself differentiable), so R1 through the pipe works. The random parameters carry no
// gradient.
//
// As in the reference, the geometric stage runs whenever any geometric multiplier is > 0 — also at p = 0, where it
// is an identity up to ~1e-6 — and the colour stage whenever any colour multiplier is > 0 (exact at p = 0).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace facetex::train {

// The AugmentPipe constructor arguments, with the reference's names and defaults (all multipliers 0 = off).
struct AugmentOptions {
  // Pixel blitting.
  double xflip = 0;        // probability multiplier for x-flip
  double rotate90 = 0;     // probability multiplier for 90-degree rotations
  double xint = 0;         // probability multiplier for integer translation
  double xint_max = 0.125; // range of integer translation, relative to the image size
  // General geometric transformations.
  double scale = 0;           // probability multiplier for isotropic scaling
  double rotate = 0;          // probability multiplier for arbitrary rotation (pre and post, see p_rot)
  double aniso = 0;           // probability multiplier for anisotropic scaling
  double xfrac = 0;           // probability multiplier for fractional translation
  double scale_std = 0.2;     // log2 standard deviation of isotropic scaling
  double rotate_max = 1;      // range of arbitrary rotation, 1 = full circle
  double aniso_std = 0.2;     // log2 standard deviation of anisotropic scaling
  double xfrac_std = 0.125;   // standard deviation of fractional translation, relative to the image size
  // Colour transformations.
  double brightness = 0;       // probability multiplier for brightness
  double contrast = 0;         // probability multiplier for contrast
  double lumaflip = 0;         // probability multiplier for luma flip
  double hue = 0;              // probability multiplier for hue rotation
  double saturation = 0;       // probability multiplier for saturation
  double brightness_std = 0.2; // standard deviation of brightness
  double contrast_std = 0.5;   // log2 standard deviation of contrast
  double hue_max = 1;          // range of hue rotation, 1 = full circle
  double saturation_std = 1;   // log2 standard deviation of saturation
  // Image-space filtering.
  double imgfilter = 0;                              // probability multiplier for image-space filtering
  std::vector<double> imgfilter_bands = {1, 1, 1, 1}; // probability multipliers of the 4 frequency bands
  double imgfilter_std = 1;                          // log2 standard deviation of the band amplification
  // Image-space corruptions.
  double noise = 0;          // probability multiplier for additive RGB noise
  double cutout = 0;         // probability multiplier for cutout
  double noise_std = 0.1;    // standard deviation of additive RGB noise
  double cutout_size = 0.5;  // size of the cutout rectangle, relative to the image size

  // train.py's augpipe_specs: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc (every
  // constant at its default). UsageError for another name.
  static AugmentOptions preset(const std::string& name);
  // The paper's pipe (spec §4.6): xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast,
  // lumaflip, hue, saturation at 1; xint_max 0.125, scale_std 0.2, rotate_max 1, aniso_std 0.2, xfrac_std 0.125,
  // brightness_std 0.2, contrast_std 0.5, hue_max 1, saturation_std 1.
  static AugmentOptions bgc() { return preset("bgc"); }

  bool any_geometric() const;
  bool any_colour(int64_t num_channels = 3) const;

  // JSON with the reference's keyword names (e.g. the parity file's init_kwargs). from_json starts from the
  // defaults and rejects unknown keys (UsageError).
  nlohmann::json to_json() const;
  static AugmentOptions from_json(const nlohmann::json& j);
};

// What one forward drew and computed (for tests and debugging; filled only when asked for). The tensors of a stage
// that did not run stay undefined (margins then stay 0).
struct AugmentDebug {
  bool geometric_ran = false;         // the geometric stage executed (any geometric multiplier > 0)
  bool colour_ran = false;            // the colour stage executed
  at::Tensor G_inv_pixel;             // [N,3,3] float32: output pixel (centred) -> input pixel, as drawn
  std::array<int, 4> margins{};       // reflect padding: left, right, top, bottom
  at::Tensor G_inv_grid;              // [N,3,3] (images' dtype): the matrix whose first 2 rows went to affine_grid
  at::Tensor images_geom;             // [N,C,H,W] after the geometric stage (= input when it did not run)
  at::Tensor C;                       // [N,4,4] float32 colour matrix on homogeneous (r,g,b,1), as drawn
};

// Not safe to call forward() on one pipe from several threads at once (it caches its filters per device).
class AugmentPipe {
 public:
  explicit AugmentPipe(AugmentOptions options = AugmentOptions::bgc(), double p = 0.0);

  // images: [N, C, H, W], float32 or float64 (C = 3, or 1 for the colour stage), nominally in [-1, 1], on any
  // device. Draws the random parameters on images.device() from the global generator of that device. Returns the
  // augmented images (same shape, dtype, device). With float64 images the draws and G_inv_pixel / C stay float32
  // (the same random parameters as a float32 call) and the rest runs in float64.
  at::Tensor forward(const at::Tensor& images, AugmentDebug* debug = nullptr) const;
  at::Tensor operator()(const at::Tensor& images, AugmentDebug* debug = nullptr) const {
    return forward(images, debug);
  }

  // The overall augmentation probability (the reference's `p` buffer). Stored as float32, like the buffer, so that
  // thresholds and controller updates round exactly as in the reference; p() returns that float32 value.
  double p() const { return static_cast<double>(p_); }
  void set_p(double p);

  const AugmentOptions& options() const { return options_; }
  // Buffers as in the reference's state_dict: Hz_geom [12] (normalised sym6, float32, CPU) and Hz_fbank [4, 43].
  const at::Tensor& Hz_geom() const { return Hz_geom_; }
  const at::Tensor& Hz_fbank() const { return Hz_fbank_; }

  // Constant tensors made once per device and reused, as the reference's misc.constant caches them (it keys on value,
  // shape, dtype and device): the constant matrices of the execute step, the identities, the luma axis, and the
  // filled tensors that drawn matrices stack as their constant elements. On a GPU each would otherwise be a fill
  // kernel or a host-to-device copy per call (about 90 per call). Key: values, shape, dtype, device.
  using ConstantKey = std::tuple<std::vector<double>, std::vector<int64_t>, int, std::string>;
  using ConstantCache = std::map<ConstantKey, at::Tensor>;
  size_t cached_constants() const { return constants_.size(); }

 private:
  at::Tensor geometric(const at::Tensor& images, AugmentDebug* debug) const;
  at::Tensor colour(const at::Tensor& images, AugmentDebug* debug) const;
  at::Tensor imgfilter(const at::Tensor& images) const;
  at::Tensor corruptions(const at::Tensor& images) const;
  const at::Tensor& buffer_on(const at::Tensor& buffer, std::optional<at::Tensor>& cache, const c10::Device& device,
                              at::ScalarType dtype) const;

  AugmentOptions options_;
  float p_ = 0.0f;
  at::Tensor Hz_geom_, Hz_fbank_;
  mutable std::optional<at::Tensor> Hz_geom_cache_, Hz_fbank_cache_;  // on the last device/dtype used
  mutable ConstantCache constants_;
};

// The 12 coefficients of the reference's wavelets['sym6'] low-pass filter (before normalisation).
const std::vector<double>& sym6_coefficients();
// The reference's image-space filter bank (4 bands x 43 taps, from sym2), float32.
at::Tensor make_imgfilter_bank();

}  // namespace facetex::train
