// The CUDA rasteriser against the CPU one: identical face indices, barycentrics and depths (they share
// raster_math.h, so agreement is exact) on a posed face mesh, on a soup of large intersecting triangles (the
// block-per-triangle path) and with exact depth ties; and the renderer on CUDA against the CPU, gradient included.
// Every test skips without a CUDA build and device.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "kernels/image_normalize.h"
#include "kernels/rasterize.h"
#include "models/face3d/renderer.h"
#include "tests/render/synthetic_face_mesh.h"

using namespace facetex;
using kernels::Impl;
using kernels::RasterOutput;

#define SKIP_WITHOUT_CUDA_KERNELS()                                                                 \
  do {                                                                                              \
    if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine"; \
  } while (0)

namespace {

void expect_identical(const RasterOutput& cuda, const RasterOutput& cpu) {
  ASSERT_TRUE(cuda.face_index.is_cuda());
  EXPECT_TRUE(at::equal(cuda.face_index.cpu(), cpu.face_index))
      << cuda.face_index.cpu().ne(cpu.face_index).sum().item<int64_t>() << " pixels differ in face index";
  EXPECT_TRUE(at::equal(cuda.barycentric.cpu(), cpu.barycentric))
      << "max barycentric difference " << (cuda.barycentric.cpu() - cpu.barycentric).abs().max().item<float>();
  EXPECT_TRUE(at::equal(cuda.depth.cpu(), cpu.depth))
      << "max depth difference " << (cuda.depth.cpu() - cpu.depth).abs().max().item<float>();
}

}  // namespace

TEST(RasterizeCuda, PosedFaceMeshIsIdenticalToTheCpu) {
  SKIP_WITHOUT_CUDA_KERNELS();
  const test::FaceMesh mesh = test::make_face_mesh(101);
  const at::Tensor v = test::project_face(mesh.vertices, {0.0, 30.0, -45.0, 80.0}, 256, 256);
  const RasterOutput cpu = kernels::rasterize(v, mesh.faces, 256, 256, Impl::kReference);
  EXPECT_GT(cpu.face_index.ge(0).sum().item<int64_t>(), 10000);
  for (at::ScalarType index_type : {at::kLong, at::kInt}) {
    expect_identical(kernels::rasterize(v.cuda(), mesh.faces.to(index_type).cuda(), 256, 256, Impl::kCuda), cpu);
  }
  // Impl::kAuto picks the CUDA kernel for CUDA tensors; Impl::kReference on CUDA tensors returns CUDA tensors.
  expect_identical(kernels::rasterize(v.cuda(), mesh.faces.cuda(), 256, 256), cpu);
  expect_identical(kernels::rasterize(v.cuda(), mesh.faces.cuda(), 256, 256, Impl::kReference), cpu);
}

TEST(RasterizeCuda, LargeIntersectingTrianglesAndTiesAreIdenticalToTheCpu) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(8);  // reproducible soup
  const int64_t faces_n = 300, h = 120, w = 150;
  // Large triangles (most go through the block-per-triangle queue), some reaching far outside the image or behind
  // the camera, depths quantised to a few values so that exact depth ties between faces are common.
  const at::Tensor v =
      at::cat({at::rand({3, 3 * faces_n, 1}) * (w + 200) - 100, at::rand({3, 3 * faces_n, 1}) * (h + 200) - 100,
               at::randint(-1, 6, {3, 3 * faces_n, 1}).to(at::kFloat)},
              2);
  const at::Tensor faces = at::arange(3 * faces_n, at::kLong).reshape({faces_n, 3});
  // Duplicated faces at the end: exact ties everywhere they cover, to be won by the originals.
  const at::Tensor with_duplicates = at::cat({faces, faces.slice(0, 0, 50)}, 0);
  const RasterOutput cpu = kernels::rasterize(v, with_duplicates, h, w, Impl::kReference);
  EXPECT_TRUE(cpu.face_index.lt(faces_n).all().item<bool>());
  expect_identical(kernels::rasterize(v.cuda(), with_duplicates.cuda(), h, w, Impl::kCuda), cpu);
}

TEST(RasterizeCuda, EmptyInputsAreHandled) {
  SKIP_WITHOUT_CUDA_KERNELS();
  const at::Tensor v = at::rand({2, 5, 3}).cuda();
  const RasterOutput r = kernels::rasterize(v, at::empty({0, 3}, at::kLong).cuda(), 7, 9, Impl::kCuda);
  EXPECT_TRUE(r.face_index.eq(-1).all().item<bool>());
  EXPECT_TRUE(r.depth.eq(0).all().item<bool>());
  EXPECT_TRUE(r.barycentric.eq(0).all().item<bool>());
}

TEST(RenderUvTextureCuda, RenderAndTextureGradientAgreeWithTheCpu) {
  SKIP_WITHOUT_CUDA_KERNELS();
  at::manual_seed(9);  // reproducible texture, background and loss weights
  const test::FaceMesh mesh = test::make_face_mesh(65);
  const at::Tensor v = test::project_face(mesh.vertices, {-20.0, 50.0}, 128, 128);
  const at::Tensor texture = at::rand({2, 3, 64, 64}) * 2 - 1;
  const at::Tensor bg = at::rand({2, 3, 128, 128}) * 2 - 1;
  const at::Tensor weights = at::randn({2, 3, 128, 128});
  std::vector<at::Tensor> composed, grads;
  for (bool cuda : {false, true}) {
    const at::Device device = cuda ? at::kCUDA : at::kCPU;
    const at::Tensor t = texture.to(device).requires_grad_(true);
    const RasterOutput raster = kernels::rasterize(v.to(device), mesh.faces.to(device), 128, 128);
    const models::face3d::Rendered out =
        models::face3d::render_uv_texture(t, mesh.uv.to(device), mesh.faces.to(device), raster);
    const at::Tensor c = models::face3d::composite(bg.to(device), out.rgb, out.mask);
    composed.push_back(c.detach().cpu());
    grads.push_back(torch::autograd::grad({(c * weights.to(device)).sum()}, {t})[0].cpu());
  }
  EXPECT_LT((composed[1] - composed[0]).abs().max().item<float>(), 1e-5f);
  EXPECT_LT((grads[1] - grads[0]).abs().max().item<float>(), 1e-3f * grads[0].abs().max().item<float>());
}
