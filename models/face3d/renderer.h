// UV-texture rendering and compositing (paper-system-spec.md §3.9-3.10): per pixel, the rasteriser's barycentrics
// interpolate the vertices' UVs; the texture is sampled bilinearly with align_corners=True, border padding and v
// flipped (texel x = u*(R-1), y = (1-v)*(R-1)); uncovered pixels are 0 and masked out. Differentiable with respect
// to the texture only. Compositing is per sample: out = bg*(1-M) + render*M (the public code's batch-mask bug fixed).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/rasterize.h"

namespace facetex::models::face3d {

struct Rendered {
  at::Tensor rgb;   // [B, C, H, W], same dtype as the texture; 0 where uncovered
  at::Tensor mask;  // [B, 1, H, W] float32 in {0, 1}: pixel covered by the mesh
};

// The texture-independent half of rendering: each pixel's sampling position in UV space (the grid of
// grid_sample, [B, H, W, 2] float32) and the coverage mask ([B, 1, H, W] float32). A batch whose geometry stays
// fixed while its textures change — projection, every step — computes it once and samples many textures.
struct UvSampling {
  at::Tensor grid;
  at::Tensor mask;
};

// vertex_uv: [V, 2] (u right, v up, in [0, 1]); faces: [F, 3] (the same as rasterised).
UvSampling uv_sampling(const at::Tensor& vertex_uv, const at::Tensor& faces, const kernels::RasterOutput& raster);
// texture: [B, C, R, R] on the sampling's device, B as rasterised.
Rendered sample_uv_texture(const at::Tensor& texture, const UvSampling& sampling);
// Both in one: sample_uv_texture(texture, uv_sampling(vertex_uv, faces, raster)).
Rendered render_uv_texture(const at::Tensor& texture, const at::Tensor& vertex_uv, const at::Tensor& faces,
                           const kernels::RasterOutput& raster);

// bg, rgb: [B, C, H, W]; mask: [B, 1, H, W]. Each sample uses its own mask.
at::Tensor composite(const at::Tensor& background, const at::Tensor& rgb, const at::Tensor& mask);

}  // namespace facetex::models::face3d
