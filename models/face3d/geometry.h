// 3DMM geometry of the Deep3DFaceRecon coefficient vector (paper-system-spec.md §3.6, §3.7, §3.11): splitting the
// coefficients, shape and albedo formation, the Euler rotation, posing, face/vertex normals and spherical-harmonics
// shading. Everything is batched over B, works on any device (the model's tensors must be on the coefficients'
// device) and is built from differentiable ATen ops.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "models/face3d/morphable_model.h"

namespace facetex::models::face3d {

// Sizes of the slices of one coefficient row, in order: identity α, expression β, albedo δ, Euler angles
// (x pitch, y yaw, z roll; radians), SH lighting γ (3 channels x 9), translation t. BFM: 80/64/80/3/27/3 = 257.
struct CoeffLayout {
  int64_t id = 80, exp = 64, tex = 80, angles = 3, light = 27, trans = 3;

  int64_t total() const { return id + exp + tex + angles + light + trans; }
  // The layout whose id/exp/tex sizes are the model's basis widths (angles, light, trans stay 3/27/3).
  static CoeffLayout for_model(const MorphableModel& model);
};

struct Coeffs {
  at::Tensor id;      // [B, K_id]
  at::Tensor exp;     // [B, K_exp]
  at::Tensor tex;     // [B, K_tex]
  at::Tensor angles;  // [B, 3] radians: x (pitch), y (yaw), z (roll)
  at::Tensor light;   // [B, 27] SH coefficients, channel-major (r0..r8, g0..g8, b0..b8)
  at::Tensor trans;   // [B, 3]
};

// coeffs: [B, layout.total()] -> views of its slices. RuntimeError if the width does not match the layout.
Coeffs split_coeffs(const at::Tensor& coeffs, const CoeffLayout& layout = {});
// The inverse: [B, total] in the same slice order.
at::Tensor join_coeffs(const Coeffs& coeffs);

// S = meanshape + idBase·α + exBase·β as [B, N, 3], minus the centroid of the mean shape (not of S): the model's
// origin is the mean face's centre whatever the coefficients.
at::Tensor shape_formation(const MorphableModel& model, const at::Tensor& id, const at::Tensor& exp);
// Albedo meantex + texBase·δ as [B, N, 3], in the model's units (0..255 for BFM); for vertex-colour paths only.
at::Tensor texture_formation(const MorphableModel& model, const at::Tensor& tex);

// angles [B, 3] -> R = Rz(z)·Ry(y)·Rx(x) [B, 3, 3] with Rx = [[1,0,0],[0,cx,-sx],[0,sx,cx]],
// Ry = [[cy,0,sy],[0,1,0],[-sy,0,cy]], Rz = [[cz,-sz,0],[sz,cz,0],[0,0,1]].
at::Tensor rotation_matrices(const at::Tensor& angles);

// points [B, N, 3] (row vectors) -> points·Rᵀ + t, i.e. v' = R v + t. rotation [B, 3, 3]; translation [B, 3] or
// undefined (pure rotation, e.g. for normals).
at::Tensor rigid_transform(const at::Tensor& points, const at::Tensor& rotation, const at::Tensor& translation = {});

// Unit face normals normalize((v1 - v2) x (v2 - v3)) [B, F, 3]; vertices [B, N, 3], triangles [F, 3] 0-based.
// Counter-clockwise triangles (seen from the side the normal points to) give outward normals.
at::Tensor face_normals(const at::Tensor& vertices, const at::Tensor& triangles);
// Unit vertex normals [B, N, 3]: the sum of the adjacent unit face normals listed in point_buf [N, 8]
// (the padding id F selects an appended zero normal), normalised. face_normals: [B, F, 3].
at::Tensor vertex_normals(const at::Tensor& face_normals, const at::Tensor& point_buf);

// Spherical-harmonics shading (§3.11): light [B, 27] -> γ [B, 3, 9] with +0.8 on coefficient 0 of each channel;
// returns Y(n)·γᵀ [B, N, 3] for unit normals [B, N, 3] (no albedo multiplication).
at::Tensor sh_shading(const at::Tensor& normals, const at::Tensor& light);

// One call for the common path: the centred shape, the rotation and the posed vertices of a coefficient batch.
struct PosedFace {
  at::Tensor shape;     // [B, N, 3] model frame, centred (shape_formation)
  at::Tensor rotation;  // [B, 3, 3]
  at::Tensor vertices;  // [B, N, 3] posed: shape·Rᵀ + t
};
PosedFace pose_face(const MorphableModel& model, const Coeffs& coeffs);

}  // namespace facetex::models::face3d
