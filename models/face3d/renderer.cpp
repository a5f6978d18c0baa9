// UV-texture rendering and compositing from ATen ops, so it runs on any device and autograd provides the gradient
// with respect to the texture (the only one training needs, paper-system-spec.md §3.13): the rasteriser's outputs
// and the UVs only build the sampling grid, which carries no gradient.
#include "models/face3d/renderer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <string>

#include "core/error.h"

namespace facetex::models::face3d {
namespace {

// "[2, 3, 64, 64]" or "undefined", for error messages.
std::string shape_text(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string text = "[";
  for (int64_t i = 0; i < t.dim(); ++i) text += (i ? ", " : "") + std::to_string(t.size(i));
  return text + "]";
}

void check_raster(const kernels::RasterOutput& r) {
  FACETEX_CHECK_RUNTIME(r.face_index.defined() && r.face_index.dim() == 3 && r.face_index.scalar_type() == at::kInt,
                        "render_uv_texture: raster.face_index must be int32 [B, H, W], got {}",
                        shape_text(r.face_index));
  const int64_t b = r.face_index.size(0), h = r.face_index.size(1), w = r.face_index.size(2);
  FACETEX_CHECK_RUNTIME(r.barycentric.defined() && r.barycentric.dim() == 4 && r.barycentric.size(0) == b &&
                            r.barycentric.size(1) == h && r.barycentric.size(2) == w && r.barycentric.size(3) == 3,
                        "render_uv_texture: raster.barycentric must be [B, H, W, 3] = [{}, {}, {}, 3], got {}", b, h, w,
                        shape_text(r.barycentric));
  FACETEX_CHECK_RUNTIME(r.barycentric.device() == r.face_index.device(),
                        "render_uv_texture: raster.barycentric is on {} but raster.face_index on {}",
                        r.barycentric.device().str(), r.face_index.device().str());
}

// The sampling grid [B, H, W, 2] of grid_sampler_2d with align_corners: texel x = (gx + 1) / 2 * (W - 1), so
// gx = 2u - 1 gives x = u (W - 1); texture rows run downwards while v points up, so gy = 1 - 2v gives
// y = (1 - v)(H - 1). (u, v) = sum_k bary_k * uv[faces[face, k]] is the UV of the visible surface point; uncovered
// pixels get (u, v) = (0, 0), a valid location for the sampler, and are masked afterwards.
// corner_uv: [F, 6] float32, the UVs of each face's three corners.
at::Tensor uv_grid_reference(const at::Tensor& corner_uv, const kernels::RasterOutput& raster) {
  const int64_t b = raster.face_index.size(0), h = raster.face_index.size(1), w = raster.face_index.size(2);
  const at::Tensor face = raster.face_index.clamp_min(0).reshape({-1}).to(at::kLong);
  const at::Tensor corners = corner_uv.index_select(0, face).reshape({b, h, w, 3, 2});
  const at::Tensor uv = (corners * raster.barycentric.to(at::kFloat).unsqueeze(-1)).sum(3);
  return at::stack({uv.select(3, 0) * 2 - 1, 1 - uv.select(3, 1) * 2}, 3);
}

// The same grid in one pass over the pixels: on the CPU the ATen version above allocates and streams ~60 bytes of
// temporaries per pixel (over 0.5 GB for a batch of eight 1024^2 images), which made it cost several times the
// rasterisation itself.
at::Tensor uv_grid_cpu(const at::Tensor& corner_uv, const kernels::RasterOutput& raster) {
  const at::Tensor face_index = raster.face_index.contiguous();
  const at::Tensor bary = raster.barycentric.to(at::kFloat).contiguous();
  const at::Tensor corners = corner_uv.contiguous();
  at::Tensor grid = at::empty({face_index.size(0), face_index.size(1), face_index.size(2), 2}, bary.options());
  const int32_t* f = face_index.data_ptr<int32_t>();
  const float* b = bary.data_ptr<float>();
  const float* c = corners.data_ptr<float>();
  float* g = grid.data_ptr<float>();
  at::parallel_for(0, face_index.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float u = 0.0f, v = 0.0f;
      if (f[p] >= 0) {
        const float* uv = c + 6 * static_cast<int64_t>(f[p]);
        const float* w = b + 3 * p;
        u = w[0] * uv[0] + w[1] * uv[2] + w[2] * uv[4];
        v = w[0] * uv[1] + w[1] * uv[3] + w[2] * uv[5];
      }
      g[2 * p] = u * 2 - 1;
      g[2 * p + 1] = 1 - v * 2;
    }
  });
  return grid;
}

}  // namespace

UvSampling uv_sampling(const at::Tensor& vertex_uv, const at::Tensor& faces, const kernels::RasterOutput& raster) {
  check_raster(raster);
  FACETEX_CHECK_RUNTIME(vertex_uv.defined() && vertex_uv.dim() == 2 && vertex_uv.size(1) == 2,
                        "render_uv_texture: vertex_uv must be [V, 2], got {}", shape_text(vertex_uv));
  FACETEX_CHECK_RUNTIME(faces.defined() && faces.dim() == 2 && faces.size(1) == 3 &&
                            (faces.scalar_type() == at::kInt || faces.scalar_type() == at::kLong),
                        "render_uv_texture: faces must be int32/int64 [F, 3], got {}", shape_text(faces));
  const at::Device device = raster.face_index.device();
  FACETEX_CHECK_RUNTIME(vertex_uv.device() == device && faces.device() == device,
                        "render_uv_texture: vertex_uv ({}), faces ({}) and raster ({}) must be on one device",
                        vertex_uv.device().str(), faces.device().str(), raster.face_index.device().str());
  UvSampling s;
  const int64_t num_faces = faces.size(0);
  if (num_faces == 0) {  // nothing can be covered; any valid grid will be masked
    s.grid = at::zeros({raster.face_index.size(0), raster.face_index.size(1), raster.face_index.size(2), 2},
                       raster.barycentric.options().dtype(at::kFloat));
  } else {
    const at::Tensor corner_uv =
        vertex_uv.to(at::kFloat).index_select(0, faces.reshape({-1}).to(at::kLong)).reshape({num_faces, 6});
    s.grid = raster.face_index.is_cpu() ? uv_grid_cpu(corner_uv, raster) : uv_grid_reference(corner_uv, raster);
  }
  s.mask = raster.face_index.ge(0).unsqueeze(1).to(at::kFloat);
  return s;
}

Rendered sample_uv_texture(const at::Tensor& texture, const UvSampling& sampling) {
  FACETEX_CHECK_RUNTIME(texture.defined() && texture.dim() == 4 && texture.is_floating_point(),
                        "render_uv_texture: texture must be a floating-point [B, C, R, R], got {}",
                        shape_text(texture));
  FACETEX_CHECK_RUNTIME(sampling.grid.defined() && sampling.mask.defined() && sampling.grid.dim() == 4,
                        "render_uv_texture: the UV sampling is not set up (uv_sampling)");
  FACETEX_CHECK_RUNTIME(texture.size(0) == sampling.grid.size(0),
                        "render_uv_texture: texture {} has a batch of {} but the raster {} has {}", shape_text(texture),
                        texture.size(0), shape_text(sampling.mask), sampling.grid.size(0));
  FACETEX_CHECK_RUNTIME(texture.device() == sampling.grid.device(),
                        "render_uv_texture: texture ({}) and raster ({}) must be on one device",
                        texture.device().str(), sampling.grid.device().str());
  // float16 grids cannot address a 1024-texel row to better than ~half a texel: sample half textures in float32.
  const at::ScalarType sample_type = texture.scalar_type() == at::kHalf ? at::kFloat : texture.scalar_type();
  constexpr int64_t kBilinear = 0, kBorder = 1;
  at::Tensor rgb = at::grid_sampler_2d(texture.to(sample_type), sampling.grid.to(sample_type), kBilinear, kBorder,
                                       /*align_corners=*/true);
  Rendered out;
  out.mask = sampling.mask;
  // In place: grid_sampler_2d's backward needs its inputs, not its output, so autograd allows it and the batch
  // does not pay for another [B, C, H, W] temporary.
  rgb.mul_(out.mask.to(sample_type));
  out.rgb = rgb.to(texture.scalar_type());
  return out;
}

Rendered render_uv_texture(const at::Tensor& texture, const at::Tensor& vertex_uv, const at::Tensor& faces,
                           const kernels::RasterOutput& raster) {
  return sample_uv_texture(texture, uv_sampling(vertex_uv, faces, raster));
}

at::Tensor composite(const at::Tensor& background, const at::Tensor& rgb, const at::Tensor& mask) {
  FACETEX_CHECK_RUNTIME(
      background.defined() && rgb.defined() && background.dim() == 4 && background.sizes() == rgb.sizes(),
      "composite: background {} and render {} must both be [B, C, H, W]", shape_text(background), shape_text(rgb));
  FACETEX_CHECK_RUNTIME(mask.defined() && mask.dim() == 4 && mask.size(0) == rgb.size(0) && mask.size(1) == 1 &&
                            mask.size(2) == rgb.size(2) && mask.size(3) == rgb.size(3),
                        "composite: mask must be [B, 1, H, W] = [{}, 1, {}, {}], got {}", rgb.size(0), rgb.size(2),
                        rgb.size(3), shape_text(mask));
  // Broadcasting [B, 1, H, W] over channels keeps sample b's mask on sample b (the public code indexed the batch
  // with the alpha channel's position and so used sample 3's mask for everyone, spec §3.10). lerp computes
  // bg + M (rgb - bg) for M < 0.5 and rgb - (rgb - bg)(1 - M) otherwise: exactly bg at M = 0 and exactly rgb at
  // M = 1, as bg (1 - M) + rgb M, in one pass instead of four [B, C, H, W] temporaries.
  return at::lerp(background.to(rgb.scalar_type()), rgb, mask.to(rgb.scalar_type()));
}

}  // namespace facetex::models::face3d
