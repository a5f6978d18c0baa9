// Photo -> UV texture: the inverse of rendering a UV-textured mesh. Every texel of an R x R UV map that lies
// inside a UV triangle is mapped through that triangle's barycentrics to the image point of the fitted mesh and
// the photo is sampled there bilinearly (../shared/reference/real-assets.md, recipe R4). A texel is visible when
// its triangle faces the camera (negative signed area of the projected triangle in image y-down coordinates, i.e.
// counter-clockwise on screen for this mesh's winding) and no other triangle is nearer at that image point
// (an image-space z-buffer over all triangles).
//
// Conventions: image points are pixels with x right, y down and pixel centres at integer coordinates (dlib's
// landmark convention). Depth grows away from the camera. Texels follow the renderer (models/face3d/renderer.h,
// align_corners=True): texel (row i, column j) is u = j/(R-1), v = 1 - i/(R-1) with v up, so a texture unwrapped
// here and rendered there maps back to the same photo pixels.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace facetex::models::face3d {

struct UnwrapOptions {
  int resolution = 256;          // R
  bool cull_back_faces = true;   // texels of back-facing triangles are not visible
  // Occlusion test slack: a texel is hidden when another surface is nearer than this, as a fraction of the
  // projected mesh's width (0.02 of a 15.5 cm wide face is about 3 mm).
  double depth_tolerance = 0.02;
};

struct UvTexture {
  at::Tensor texture;         // [3, R, R] uint8 RGB; 0 where not visible
  at::Tensor mask;            // [R, R] uint8 in {0, 1}: texel visible in the photo
  at::Tensor chart;           // [R, R] uint8 in {0, 1}: texel inside some UV triangle (the most that can be seen)
  double coverage = 0;        // fraction of the R x R square that is visible (mean of mask)
  double chart_coverage = 0;  // fraction of the square covered by the UV layout
};

// image: [H, W, 3] uint8 RGB (HWC); uv: [V, 2] in [0, 1], v up; triangles: [F, 3] int; projected: [V, 2] image
// points of the posed mesh; depth: [V] (larger = farther), in the units of `projected`.
UvTexture unwrap_to_uv(const at::Tensor& image, const at::Tensor& uv, const at::Tensor& triangles,
                       const at::Tensor& projected, const at::Tensor& depth, const UnwrapOptions& options = {});

// [F] bool: the projected triangle faces the camera (signed area < 0 in image y-down coordinates).
at::Tensor front_facing(const at::Tensor& projected, const at::Tensor& triangles);

// Image-space z-buffer: [H, W] int32, the nearest triangle whose projection covers each pixel centre, -1 if none.
at::Tensor rasterize_triangle_ids(const at::Tensor& projected, const at::Tensor& depth, const at::Tensor& triangles,
                                  int64_t height, int64_t width);

struct OverlayOptions {
  double alpha = 0.55;   // opacity of the shaded mesh
  bool wireframe = true; // draw triangle edges where the projected mesh is at least 150 px wide
  at::Tensor points;     // optional [N, 2] image points drawn as dots (e.g. the detected landmarks)
  std::array<double, 4> box{0, 0, 0, 0};  // optional (left, top, width, height) drawn as a rectangle
};
// The photo with the posed mesh drawn over it (Lambert-shaded from the camera direction, front faces blue-grey,
// back faces red), for render.png and contact sheets. Returns [H, W, 3] uint8.
at::Tensor draw_mesh_overlay(const at::Tensor& image, const at::Tensor& projected, const at::Tensor& depth,
                             const at::Tensor& triangles, const OverlayOptions& options = {});

}  // namespace facetex::models::face3d
