// The MediaPipe canonical face mesh (canonical_mesh.h) as a MorphableModel, so that the coefficient/crop machinery
// (camera, renderer, `data annotate`, training's dataset background mode) runs on real photos without a licensed
// 3DMM: a rigid template (identity, expression and albedo bases of width 1, all zero — the .mat layout needs at
// least one column), scaled from centimetres to decimetres (BFM-like units, so the 224 protocol's camera at
// distance 10 frames it like a BFM face), keypoints = the dlib-68 -> mesh-vertex map, the mesh's own UVs.
#pragma once

#include <cstdint>
#include <vector>

#include "models/face3d/canonical_mesh.h"
#include "models/face3d/morphable_model.h"

namespace facetex::models::face3d {

inline constexpr double kCanonicalModelScale = 0.1;  // model units per centimetre

// point_buf keeps at most 8 faces per vertex (the layout's width); it only feeds vertex normals (lighting paths).
MorphableModel canonical_morphable_model(const CanonicalMesh& mesh, const std::vector<int64_t>& dlib68_to_mesh);

}  // namespace facetex::models::face3d
