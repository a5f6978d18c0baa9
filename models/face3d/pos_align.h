// The Deep3DFaceRecon face alignment (paper-system-spec.md §3.5): five 2D landmarks are fitted to five reference 3D
// landmarks by POS (a least-squares scaled-orthographic projection), and the image is rescaled by s' = 102/s and
// cropped to 224x224 around the fitted translation. The crop's origin and the scale are kept per sample as
// bbox = [left/s', up/s', s], which is all the camera (camera.h) needs to project into the original image again.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include <cstdint>

#include "models/face3d/morphable_model.h"

namespace facetex::models::face3d {

// The crop the coefficient regressor sees: crop_size x crop_size pixels at rescale_factor / s pixels per image
// pixel (Deep3DFaceRecon: 224 and 102).
struct CropProtocol {
  int64_t crop_size = 224;
  double rescale_factor = 102.0;
};

// Five points in MTCNN order: left eye, right eye, nose tip, left mouth corner, right mouth corner ("left" = image
// left, i.e. the subject's right).
inline constexpr int64_t kNumAlignPoints = 5;

// The reference 3D landmarks from 68 3D points [68, 3] (e.g. similarity_Lm3D_all.mat 'lm'): 1-based ids
// 31, mean(37, 40), mean(43, 46), 49, 55 stacked as [nose, eyeL, eyeR, mouthL, mouthR] and reordered [1,2,0,3,4]
// -> [5, 3] in MTCNN order.
at::Tensor reference_lm3d_from_68(const at::Tensor& lm68_3d);
// The same from a morphable model: its mean shape, centred like shape_formation(), at its 68 keypoints.
at::Tensor model_reference_lm3d(const MorphableModel& model);

// 68-point (iBUG/dlib) image landmarks [..., 68, 2] -> the five MTCNN-order points [..., 5, 2]: eye centres are the
// means of the six eye contour points (36-41, 42-47, 0-based), nose tip 30, mouth corners 48 and 54.
at::Tensor landmarks68_to_5(const at::Tensor& lm68);

struct PosFit {
  at::Tensor t;  // [B, 2] float64: image position of the 3D origin, x right, y UP (flipped: img_height - 1 - row)
  at::Tensor s;  // [B] float64: pixels per model unit
};
// POS: lm2d [B, K, 2] pixel coordinates (x = column, y = row), lm3d [K, 3] or [B, K, 3], K >= 4. The y axis is
// flipped with img_height (y' = img_height - 1 - y), then x' = k0·X + k1·Y + k2·Z + k3, y' = k4·X + ... + k7 is
// solved in least squares; s = (|k0:3| + |k4:7|)/2, t = (k3, k7). Computed on the CPU in float64.
PosFit pos_fit(const at::Tensor& lm2d, const at::Tensor& lm3d, int64_t img_height);

struct AlignedCrop {
  at::Tensor crop;   // [B, C, T, T] same dtype as the images; zeros where the crop leaves the image
  at::Tensor bbox;   // [B, 3] float32: [left/s', up/s', s] — the crop origin in original pixels and the POS scale
  at::Tensor valid;  // [B] bool: false for samples without a face or with a degenerate fit (s not positive/finite)
};
// No-face convention of the public code: a zero crop and bbox [2000, 2000, 1], which renders far off-screen, so the
// mask is empty and the composite is the background.
inline constexpr float kNoFaceBbox[3] = {2000.0f, 2000.0f, 1.0f};

// One sample's crop window by resize_n_crop's arithmetic (Python int() truncation included): the resized image
// size, the crop's top-left corner in it, and s' = rescale_factor / s. None for a non-finite fit or a degenerate or
// oversized resize. The one place this arithmetic lives (resize_n_crop and the landmark fit's crop_boxes use it).
struct CropWindow {
  int64_t resized_h = 0, resized_w = 0, left = 0, up = 0;
  double rescale = 0;  // s'
};
std::optional<CropWindow> crop_window(double s, double t0, double t1, int64_t height, int64_t width,
                                      const CropProtocol& protocol = {});

// The crop boxes resize_n_crop() returns for a POS fit of images of height x width (on the CPU), without resizing
// any image. Rows with has_face false (undefined: all true) or a degenerate fit get kNoFaceBbox; valid [B] says which.
at::Tensor crop_boxes(const PosFit& fit, int64_t height, int64_t width, const CropProtocol& protocol,
                      const at::Tensor& has_face, at::Tensor* valid);

// images [B, C, H, W] floating point. Per sample: s' = rescale/s, w = int(W*s'), h = int(H*s'),
// left = int(w/2 - T/2 + (t0 - W/2)*s'), up = int(h/2 - T/2 + (H/2 - t1)*s') (int() truncates toward zero like
// Python's), bicubic resize (align_corners=True) of the image to h x w, crop [up, up+T) x [left, left+T) with zero
// padding. Samples whose fit is degenerate (or whose resized image would exceed 8192 pixels a side) get the no-face
// result. has_face [B] bool (optional) marks samples without a detected face.
AlignedCrop resize_n_crop(const at::Tensor& images, const PosFit& fit, const CropProtocol& protocol = {},
                          const at::Tensor& has_face = {});

// The whole alignment step: pos_fit with img_height = H, then resize_n_crop. lm5 [B, 5, 2] (rows of samples
// without a face are ignored), has_face [B] bool or undefined (all have a face).
AlignedCrop align_faces(const at::Tensor& images, const at::Tensor& lm5, const at::Tensor& lm3d,
                        const at::Tensor& has_face = {}, const CropProtocol& protocol = {});

// Back-mapping between original-image and crop pixel coordinates of a bbox: crop = (image - bbox[:2]) * s' and
// image = bbox[:2] + crop / s', with s' = rescale/bbox[2]. points [B, K, 2], bbox [B, 3].
at::Tensor image_to_crop(const at::Tensor& points, const at::Tensor& bbox, const CropProtocol& protocol = {});
at::Tensor crop_to_image(const at::Tensor& points, const at::Tensor& bbox, const CropProtocol& protocol = {});

}  // namespace facetex::models::face3d
