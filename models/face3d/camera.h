// The perspective camera of the public renderer (paper-system-spec.md §3.8): a pinhole at (0, 0, distance) looking
// down -Z, whose per-sample intrinsics re-express Deep3DFaceRecon's 224x224 crop projection in the original image
// through the alignment's bbox [left, up, s]. Output is the rasteriser's input (kernels/rasterize.h).
#pragma once

#include <ATen/core/Tensor.h>

#include "models/face3d/pos_align.h"

namespace facetex::models::face3d {

struct CameraOptions {
  double focal = 1015.0;    // Deep3DFaceRecon's focal length in pixels of its crop
  double x_squeeze = 0.98;  // the public code's empirical horizontal squeeze: fx = x_squeeze * focal / s'
  double distance = 10.0;   // camera position on +Z
  CropProtocol crop;        // crop size (principal point at its centre) and rescale factor of the alignment
};

struct CameraIntrinsics {
  at::Tensor fx, fy, cx, cy;  // [B] float32, pixels of the original image
  double distance = 10.0;
};

// bbox [B, 3] = [left/s', up/s', s] (pos_align.h): s' = rescale/s, fx = x_squeeze·focal/s', fy = focal/s',
// cx = left/s' + (crop/2)/s', cy = up/s' + (crop/2)/s'.
CameraIntrinsics intrinsics_from_bbox(const at::Tensor& bbox, const CameraOptions& options = {});

// vertices [B, V, 3] posed model-space points -> screen vertices [B, V, 3] float32:
//   x = cx + fx·X/(d - Z)  (column), y = cy - fy·Y/(d - Z)  (row), z = d - Z (positive depth, smaller is nearer),
// in continuous pixel coordinates with the origin at the top-left corner of the top-left pixel — exactly the
// screen_vertices of kernels::rasterize. Points at or behind the camera plane (d - Z <= 0) are not clipped here.
at::Tensor project_to_screen(const at::Tensor& vertices, const CameraIntrinsics& camera);

}  // namespace facetex::models::face3d
