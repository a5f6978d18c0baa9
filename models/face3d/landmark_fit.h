// Geometry from 2D landmarks without a coefficient regressor (the front end of `facetex data annotate`):
// 68 image landmarks -> the five alignment points -> POS with the model's reference landmarks -> the crop box
// (left, up, s) of the 224 protocol (paper-system-spec.md §3.5), then a batched Levenberg-Marquardt fit of the
// coefficients (pose angles, translation and — when the model has bases — identity and expression under a ridge
// prior) such that the model's keypoints, projected by exactly the camera the renderer uses (camera.h, §3.8, with
// that crop box), land on the landmarks in the original image. The crop box is the protocol's, never adjusted by
// the fit, so the coefficients mean what a coefficient regressor run on that crop would output.
//
// Landmark convention: x right, y down, pixel centres at integer coordinates (as dlib reports them). The camera's
// continuous coordinates have their origin at the top-left corner of the top-left pixel, so a landmark x maps to
// x + 0.5 there.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "models/face3d/camera.h"
#include "models/face3d/morphable_model.h"
#include "models/face3d/pos_align.h"

namespace facetex::models::face3d {

struct LandmarkFitOptions {
  CameraOptions camera;     // the renderer's camera (its crop protocol is the alignment's)
  int iterations = 40;      // Levenberg-Marquardt iterations (each one linear solve per row)
  bool fit_shape = true;    // also fit identity and expression (models with bases)
  // Ridge prior on identity / expression coefficients, in squared 224-crop pixels per squared unit coefficient:
  // the fit minimises sum_points |Δ|² (crop pixels) + id_weight·|α|² + exp_weight·|β|².
  double id_weight = 1.0, exp_weight = 1.0;
  // Fit on all 68 points; default: the 51 inner points (17..67), since the jaw line of a real detector follows the
  // silhouette, which slides over the 3D surface with the pose.
  bool use_jaw = false;
};

struct LandmarkFit {
  at::Tensor coeffs;       // [B, K] float32, the model's layout (CoeffLayout::for_model); zeros where !valid
  at::Tensor crop;         // [B, 3] float32 (left, up, s); kNoFaceBbox where !valid
  at::Tensor valid;        // [B] bool: has_face and a finite, non-degenerate fit
  at::Tensor lm5;          // [B, 5, 2] float32: the alignment points (MTCNN order) that POS used
  at::Tensor projected;    // [B, 68, 2] float32: fitted model keypoints, landmark convention
  at::Tensor residual_px;  // [B] float32: mean distance between fitted keypoints and landmarks over the fitted
                           // points, original pixels; -1 where !valid
  int iterations = 0;      // LM iterations run (the batch stops when every row has converged)
};

// landmarks68 [B, 68, 2], has_face [B] bool (undefined: all), image height x width in pixels.
LandmarkFit fit_landmarks(const MorphableModel& model, const at::Tensor& landmarks68, const at::Tensor& has_face,
                          int64_t height, int64_t width, const LandmarkFitOptions& options = {});

// The 68 keypoints of coefficient rows [B, K] under the renderer's camera with crop boxes [B, 3]: [B, 68, 2] in the
// landmark convention (continuous screen coordinates minus 0.5). This is the deterministic landmark provider of
// spec §10 for renders of a known model.
at::Tensor project_keypoints(const MorphableModel& model, const at::Tensor& coeffs, const at::Tensor& crops,
                             const CameraOptions& camera = {});

}  // namespace facetex::models::face3d
