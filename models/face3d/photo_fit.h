// Fit of a rigid template mesh (the canonical face mesh) to 2D landmarks in a photo with a scaled-orthographic
// camera: x ≈ s·R[:2]·X + t (../shared/reference/real-assets.md, recipe R4). The linear start is the affine least
// squares fit whose 2x3 matrix is replaced by the nearest scaled matrix with orthonormal rows (SVD); an optional
// Gauss-Newton refinement then minimises the reprojection error over (s, R, t) directly.
//
// Frames: image coordinates are pixels, x right, y down (as dlib reports them). R is a proper rotation from the
// mesh frame (cm, y up, z towards the viewer) to a camera frame with x right, y down and z away from the camera,
// so a frontal face has R ≈ diag(1, -1, -1), and a larger depth is farther away.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

namespace facetex::models::face3d {

struct CanonicalMesh;

struct PoseFitOptions {
  bool refine = true;   // Gauss-Newton on the reprojection error after the linear fit
  int max_iterations = 20;
};

struct PoseFit {
  std::array<std::array<double, 3>, 3> rotation{};  // rows: image x, image y, depth
  double scale = 0;                                 // pixels per mesh unit
  std::array<double, 2> translation{};              // pixels
  double mean_residual_px = 0;                      // mean distance between fitted points and landmarks
  double max_residual_px = 0;
  int iterations = 0;                               // refinement steps taken
  at::Tensor projected;                             // [V, 2] float32: every vertex in image pixels
  at::Tensor depth;                                 // [V] float32: s·R[2]·X, pixels (larger = farther)

  // Intrinsic Tait-Bryan angles of the head in degrees (yaw about the vertical axis, pitch about the horizontal
  // axis, roll in the image plane); (0, 0, 0) for a frontal, upright face.
  std::array<double, 3> yaw_pitch_roll_degrees() const;
  // The rotation in an OpenGL-style camera frame (x right, y up, z towards the viewer) — what to apply to the
  // mesh before exporting it so that a viewer shows it as posed in the photo: diag(1,-1,-1)·R.
  std::array<std::array<double, 3>, 3> rotation_gl() const;
};

// vertices: [V, 3] mesh; fit_vertices: the mesh-vertex index of each landmark; landmarks: [N, 2] (N =
// fit_vertices.size() >= 4) image points. Throws DataError for degenerate input (too few or collinear points).
PoseFit fit_pose(const at::Tensor& vertices, const std::vector<int64_t>& fit_vertices, const at::Tensor& landmarks,
                 const PoseFitOptions& options = {});

// The dlib/iBUG-68 case: fits on the 51 inner points (17..67: brows, nose, eyes, mouth; the jaw line is skipped
// because its 2D contour slides over the 3D surface with the pose). landmarks68: [68, 2].
PoseFit fit_dlib68(const CanonicalMesh& mesh, const std::vector<int64_t>& dlib68_to_mesh, const at::Tensor& landmarks68,
                   const PoseFitOptions& options = {});

// Applies a pose to mesh vertices: [V, 2] image points and [V] depths (what PoseFit holds for the fitted mesh).
void project_vertices(const at::Tensor& vertices, const std::array<std::array<double, 3>, 3>& rotation, double scale,
                      const std::array<double, 2>& translation, at::Tensor* projected, at::Tensor* depth);

}  // namespace facetex::models::face3d
