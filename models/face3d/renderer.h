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

// texture: [B, C, R, R]; vertex_uv: [V, 2] (u right, v up, in [0, 1]); faces: [F, 3] (the same as rasterised).
Rendered render_uv_texture(const at::Tensor& texture, const at::Tensor& vertex_uv, const at::Tensor& faces,
                           const kernels::RasterOutput& raster);

// bg, rgb: [B, C, H, W]; mask: [B, 1, H, W]. Each sample uses its own mask.
at::Tensor composite(const at::Tensor& background, const at::Tensor& rgb, const at::Tensor& mask);

}  // namespace facetex::models::face3d
