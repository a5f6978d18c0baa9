#include "models/face3d/pos_align.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"

namespace facetex::models::face3d {
namespace {

// A resized image larger than this per side means the fit is nonsense (a face a few pixels wide scaled up to 224);
// such samples are treated as "no face" instead of allocating gigabytes.
constexpr int64_t kMaxResizedSide = 8192;

at::Tensor point(const at::Tensor& lm, int64_t i) { return lm.select(-2, i); }
at::Tensor mean_of(const at::Tensor& lm, int64_t first, int64_t count) {
  return lm.narrow(-2, first, count).mean(-2);
}

at::Tensor bbox_scale(const at::Tensor& bbox, const CropProtocol& protocol) {
  FACETEX_CHECK_RUNTIME(bbox.dim() == 2 && bbox.size(1) == 3, "bbox must be [B, 3], got {}", bbox.sizes());
  return (protocol.rescale_factor / bbox.select(1, 2).to(at::kDouble)).view({-1, 1, 1});  // s'
}

}  // namespace

at::Tensor reference_lm3d_from_68(const at::Tensor& lm68_3d) {
  FACETEX_CHECK_RUNTIME(lm68_3d.dim() == 2 && lm68_3d.size(0) == 68 && lm68_3d.size(1) == 3,
                        "reference_lm3d_from_68: expected [68, 3], got {}", lm68_3d.sizes());
  // 1-based 31, (37, 40), (43, 46), 49, 55: nose tip, eye corners, mouth corners.
  const at::Tensor nose = lm68_3d[30];
  const at::Tensor eye_l = (lm68_3d[36] + lm68_3d[39]) / 2;
  const at::Tensor eye_r = (lm68_3d[42] + lm68_3d[45]) / 2;
  // Stacked [nose, eyeL, eyeR, mouthL, mouthR] then reordered [1, 2, 0, 3, 4] to MTCNN order.
  return at::stack({eye_l, eye_r, nose, lm68_3d[48], lm68_3d[54]}, 0);
}

at::Tensor model_reference_lm3d(const MorphableModel& model) {
  // Centred like shape_formation(), so that POS's translation is where the model origin projects.
  const at::Tensor centred = model.mean_shape - model.mean_shape.mean(0, /*keepdim=*/true);
  return reference_lm3d_from_68(centred.index_select(0, model.keypoints.to(centred.device())));
}

at::Tensor landmarks68_to_5(const at::Tensor& lm68) {
  FACETEX_CHECK_RUNTIME(lm68.dim() >= 2 && lm68.size(-2) == 68 && lm68.size(-1) == 2,
                        "landmarks68_to_5: expected [..., 68, 2], got {}", lm68.sizes());
  return at::stack({mean_of(lm68, 36, 6), mean_of(lm68, 42, 6), point(lm68, 30), point(lm68, 48), point(lm68, 54)},
                   -2);
}

PosFit pos_fit(const at::Tensor& lm2d, const at::Tensor& lm3d, int64_t img_height) {
  FACETEX_CHECK_RUNTIME(lm2d.dim() == 3 && lm2d.size(2) == 2 && lm2d.size(1) >= 4,
                        "pos_fit: 2D landmarks must be [B, K, 2] with K >= 4, got {}", lm2d.sizes());
  const int64_t b = lm2d.size(0), k = lm2d.size(1);
  FACETEX_CHECK_RUNTIME((lm3d.dim() == 2 || (lm3d.dim() == 3 && lm3d.size(0) == b)) && lm3d.size(-2) == k &&
                            lm3d.size(-1) == 3,
                        "pos_fit: 3D landmarks must be [{}, 3] or [{}, {}, 3], got {}", k, b, k, lm3d.sizes());
  // A 5x4 least-squares problem per sample: the tiny solve runs on the CPU in float64, like the reference's numpy.
  const at::Tensor p3 = lm3d.to(at::kCPU, at::kDouble).expand({b, k, 3});
  const at::Tensor p2 = lm2d.to(at::kCPU, at::kDouble);
  // The 10x8 system of the reference is block diagonal: x' and y' share the matrix [X Y Z 1].
  const at::Tensor a = at::cat({p3, at::ones({b, k, 1}, p3.options())}, 2);                         // [B, K, 4]
  const at::Tensor rhs = at::stack({p2.select(2, 0), (img_height - 1) - p2.select(2, 1)}, 2);      // y flipped up
  const at::Tensor sol = std::get<0>(at::linalg_lstsq(a, rhs));                                      // [B, 4, 2]
  PosFit fit;
  const at::Tensor r = sol.narrow(1, 0, 3);  // rows k0..k2 (x) and k4..k6 (y) as the two columns
  fit.s = (r.select(2, 0).norm(2, {1}) + r.select(2, 1).norm(2, {1})) / 2;
  fit.t = sol.select(1, 3).contiguous();
  return fit;
}

std::optional<CropWindow> crop_window(double s, double t0, double t1, int64_t height, int64_t width,
                                      const CropProtocol& protocol) {
  if (!(std::isfinite(s) && s > 0 && std::isfinite(t0) && std::isfinite(t1))) return std::nullopt;
  const double half = static_cast<double>(protocol.crop_size) / 2.0;
  const double sp = protocol.rescale_factor / s;  // s'
  const double wd = width * sp, hd = height * sp;
  if (!(wd >= 1 && hd >= 1 && wd <= kMaxResizedSide && hd <= kMaxResizedSide)) return std::nullopt;
  CropWindow win;
  win.rescale = sp;
  // Python int(): truncation toward zero.
  win.resized_w = static_cast<int64_t>(wd);
  win.resized_h = static_cast<int64_t>(hd);
  win.left = static_cast<int64_t>(std::trunc(win.resized_w / 2.0 - half + (t0 - width / 2.0) * sp));
  win.up = static_cast<int64_t>(std::trunc(win.resized_h / 2.0 - half + (height / 2.0 - t1) * sp));
  return win;
}

at::Tensor crop_boxes(const PosFit& fit, int64_t height, int64_t width, const CropProtocol& protocol,
                      const at::Tensor& has_face, at::Tensor* valid_out) {
  const int64_t b = fit.s.size(0);
  FACETEX_CHECK_RUNTIME(fit.t.sizes() == at::IntArrayRef({b, 2}), "crop_boxes: the fit must have t [B, 2], s [B]");
  const at::Tensor t = fit.t.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor s = fit.s.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor face = has_face.defined() ? has_face.to(at::kCPU, at::kBool).contiguous() : at::ones({b}, at::kBool);
  auto ta = t.accessor<double, 2>();
  auto sa = s.accessor<double, 1>();
  auto fa = face.accessor<bool, 1>();
  at::Tensor bbox = at::empty({b, 3}, at::kFloat);
  at::Tensor valid = at::zeros({b}, at::kBool);
  auto bb = bbox.accessor<float, 2>();
  auto va = valid.accessor<bool, 1>();
  for (int64_t i = 0; i < b; ++i) {
    for (int k = 0; k < 3; ++k) bb[i][k] = kNoFaceBbox[k];
    if (!fa[i]) continue;
    const double scale = sa[i];
    // The window resize_n_crop crops (crop_window, above).
    const std::optional<CropWindow> win = crop_window(scale, ta[i][0], ta[i][1], height, width, protocol);
    if (!win) continue;
    va[i] = true;
    bb[i][0] = static_cast<float>(win->left / win->rescale);
    bb[i][1] = static_cast<float>(win->up / win->rescale);
    bb[i][2] = static_cast<float>(scale);
  }
  if (valid_out) *valid_out = valid;
  return bbox;
}

AlignedCrop resize_n_crop(const at::Tensor& images, const PosFit& fit, const CropProtocol& protocol,
                          const at::Tensor& has_face) {
  FACETEX_CHECK_RUNTIME(images.dim() == 4 && at::isFloatingType(images.scalar_type()),
                        "resize_n_crop: images must be floating point [B, C, H, W], got {} {}", images.sizes(),
                        c10::toString(images.scalar_type()));
  const int64_t b = images.size(0), channels = images.size(1), height = images.size(2), width = images.size(3);
  FACETEX_CHECK_RUNTIME(fit.t.defined() && fit.s.defined() && fit.t.sizes() == at::IntArrayRef({b, 2}) &&
                            fit.s.sizes() == at::IntArrayRef({b}),
                        "resize_n_crop: the fit must have t [B, 2] and s [B] with B = {}", b);
  FACETEX_CHECK_RUNTIME(!has_face.defined() || (has_face.dim() == 1 && has_face.size(0) == b),
                        "resize_n_crop: has_face must be [B] with B = {}", b);
  FACETEX_CHECK_RUNTIME(protocol.crop_size > 0 && protocol.rescale_factor > 0,
                        "resize_n_crop: crop size and rescale factor must be positive");
  const int64_t size = protocol.crop_size;
  AlignedCrop out;
  out.crop = at::zeros({b, channels, size, size}, images.options());
  out.bbox = crop_boxes(fit, height, width, protocol, has_face, &out.valid);
  const at::Tensor t = fit.t.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor s = fit.s.to(at::kCPU, at::kDouble).contiguous();
  auto ta = t.accessor<double, 2>();
  auto sa = s.accessor<double, 1>();
  auto valid = out.valid.accessor<bool, 1>();
  for (int64_t i = 0; i < b; ++i) {
    if (!valid[i]) continue;
    const CropWindow win = *crop_window(sa[i], ta[i][0], ta[i][1], height, width, protocol);  // valid: it exists
    const int64_t w = win.resized_w, h = win.resized_h, left = win.left, up = win.up;
    const int64_t r0 = std::max<int64_t>(up, 0), r1 = std::min<int64_t>(up + size, h);
    const int64_t c0 = std::max<int64_t>(left, 0), c1 = std::min<int64_t>(left + size, w);
    if (r1 <= r0 || c1 <= c0) continue;  // the crop misses the image entirely: all zeros, still a valid geometry
    const std::array<int64_t, 2> resized_size = {h, w};
    const at::Tensor resized = at::upsample_bicubic2d(images.narrow(0, i, 1), resized_size, /*align_corners=*/true);
    out.crop[i]
        .narrow(1, r0 - up, r1 - r0)
        .narrow(2, c0 - left, c1 - c0)
        .copy_(resized[0].narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0));
  }
  out.bbox = out.bbox.to(images.device());
  out.valid = out.valid.to(images.device());
  return out;
}

AlignedCrop align_faces(const at::Tensor& images, const at::Tensor& lm5, const at::Tensor& lm3d,
                        const at::Tensor& has_face, const CropProtocol& protocol) {
  FACETEX_CHECK_RUNTIME(images.dim() == 4, "align_faces: images must be [B, C, H, W], got {}", images.sizes());
  FACETEX_CHECK_RUNTIME(lm5.dim() == 3 && lm5.size(0) == images.size(0),
                        "align_faces: landmarks must be [B, K, 2] with B = {}, got {}", images.size(0), lm5.sizes());
  // Rows without a face still solve (the system matrix comes from lm3d and is full rank); their result is dropped.
  return resize_n_crop(images, pos_fit(lm5, lm3d, images.size(2)), protocol, has_face);
}

at::Tensor image_to_crop(const at::Tensor& points, const at::Tensor& bbox, const CropProtocol& protocol) {
  FACETEX_CHECK_RUNTIME(points.dim() == 3 && points.size(2) == 2 && points.size(0) == bbox.size(0),
                        "image_to_crop: points must be [B, K, 2], got {}", points.sizes());
  const at::Tensor origin = bbox.narrow(1, 0, 2).to(at::kDouble).unsqueeze(1);
  return ((points.to(at::kDouble) - origin) * bbox_scale(bbox, protocol)).to(points.scalar_type());
}

at::Tensor crop_to_image(const at::Tensor& points, const at::Tensor& bbox, const CropProtocol& protocol) {
  FACETEX_CHECK_RUNTIME(points.dim() == 3 && points.size(2) == 2 && points.size(0) == bbox.size(0),
                        "crop_to_image: points must be [B, K, 2], got {}", points.sizes());
  const at::Tensor origin = bbox.narrow(1, 0, 2).to(at::kDouble).unsqueeze(1);
  return (points.to(at::kDouble) / bbox_scale(bbox, protocol) + origin).to(points.scalar_type());
}

}  // namespace facetex::models::face3d
