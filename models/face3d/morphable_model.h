// A 3D morphable face model in the Deep3DFaceRecon / BFM "front" layout (paper-system-spec.md §3.7), held 0-based
// in memory. Loaded from the MATLAB v5 .mat (fields meanshape, idBase, exBase, meantex, texBase, tri, point_buf,
// keypoints; all indices 1-based in the file) plus per-vertex UVs from a .npy; or generated synthetically in the
// same layout for tests and the synthetic world.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace facetex::models::face3d {

struct MorphableModel {
  at::Tensor mean_shape;  // [N, 3] float32
  at::Tensor id_base;     // [3N, K_id] float32 (K_id = 80 for BFM)
  at::Tensor exp_base;    // [3N, K_exp] (64)
  at::Tensor mean_tex;    // [N, 3]
  at::Tensor tex_base;    // [3N, K_tex] (80)
  at::Tensor triangles;   // [F, 3] int64, 0-based
  at::Tensor point_buf;   // [N, 8] int64, 0-based face ids per vertex; F = padding (points at a zero normal)
  at::Tensor keypoints;   // [68] int64, 0-based vertex ids of the 68 landmarks
  at::Tensor uv;          // [N, 2] float32 in [0, 1], v up (OBJ convention)

  int64_t num_vertices() const { return mean_shape.size(0); }
  int64_t num_triangles() const { return triangles.size(0); }
};

// DataError naming the file and field for anything missing or inconsistent (shapes, index ranges).
MorphableModel load_morphable_model(const std::filesystem::path& mat_file, const std::filesystem::path& uv_npy);
// "MAT:UV" (a .mat face model and its per-vertex UV .npy) -> the two paths. Paths may hold ':' themselves: the split
// is at the last ':' whose left side names a file (else the last ':', so that loading names the missing file).
// UsageError naming `option` when there is no ':' with text on both sides.
std::pair<std::filesystem::path, std::filesystem::path> split_model_files(const std::string& spec,
                                                                          const std::string& option);

// Writes the same layout (1-based indices), atomically.
void save_morphable_model(const MorphableModel& model, const std::filesystem::path& mat_file,
                          const std::filesystem::path& uv_npy);

struct SyntheticModelOptions {
  uint64_t seed = 0;
  int grid = 48;        // vertices per side of the face height field (N = grid^2)
  int id_dims = 80, exp_dims = 64, tex_dims = 80;
  double basis_scale = 0.02;  // standard deviation of a unit coefficient's displacement, in model units
};
// A smooth face-like surface (about the size of a BFM face, in its units) with random orthonormal bases,
// 68 keypoints at plausible face positions, planar UVs and point_buf built from adjacency. Deterministic in seed.
MorphableModel make_synthetic_model(const SyntheticModelOptions& options);

}  // namespace facetex::models::face3d
