// Batched triangle rasterisation (one face per pixel, z-buffer, perspective-correct barycentrics, no culling),
// the hard rasteriser the spec's PyTorch3D settings reduce to (paper-system-spec.md §3.8-3.9). CPU (multi-threaded)
// and CUDA implementations; the output carries no gradient (geometry is not differentiated in training).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/dispatch.h"

namespace facetex::kernels {

struct RasterOutput {
  at::Tensor face_index;   // [B, H, W] int32: index of the nearest covering triangle, -1 where nothing covers
  at::Tensor barycentric;  // [B, H, W, 3] float32: perspective-correct barycentrics of that triangle (0 where empty)
  at::Tensor depth;        // [B, H, W] float32: camera-space depth of the visible surface (0 where empty)
};

// screen_vertices: [B, V, 3] float32 — x = column, y = row in continuous pixel coordinates (origin at the top-left
// corner of the top-left pixel, pixel centres at +0.5), z = positive camera-space depth (smaller is nearer).
// faces: [F, 3] int32/int64 vertex indices shared by the batch. A pixel centre exactly on a shared edge belongs
// to exactly one of the two triangles (top-left fill rule).
RasterOutput rasterize(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width,
                       Impl impl = Impl::kAuto);

}  // namespace facetex::kernels
