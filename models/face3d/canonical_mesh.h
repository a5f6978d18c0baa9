// The MediaPipe canonical face mesh (468 vertices with UVs, 898 triangles, centimetres; Apache-2.0), read from the
// geometry_pipeline_metadata_landmarks.binarypb that scripts/fetch_assets.sh cuts out of the npm package, and the
// dlib-68 -> mesh-vertex correspondence (VTX68 of @vladmandic/human's facemeshcoords.ts). See
// ../shared/reference/real-assets.md (recipes R3, R4).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <vector>

namespace facetex::models::face3d {

struct CanonicalMesh {
  at::Tensor vertices;   // [468, 3] float32, cm, y up
  at::Tensor uv;         // [468, 2] float32, u right, v up (OBJ convention; the file's v is image-style, flipped here)
  at::Tensor triangles;  // [898, 3] int64, 0-based
};

// DataError naming the file for a malformed protobuf.
CanonicalMesh load_canonical_mesh(const std::filesystem::path& binarypb);

// The 68 mesh-vertex indices of the dlib/iBUG 68 landmarks, parsed from facemeshcoords.ts (VTX68).
std::vector<int64_t> load_dlib68_to_mesh(const std::filesystem::path& facemeshcoords_ts);

}  // namespace facetex::models::face3d
