// The AugmentPipe's deterministic part replayed from the recorded matrices (parity README §3.8, steps 1-7): the
// integration test of upfirdn2d (sym6, separable, up and down) and grid_sample against the reference pipe. It needs
// none of the random draws; the real AugmentPipe (train/) is tested separately.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "core/h5.h"
#include "kernels/grid_sample.h"
#include "kernels/upfirdn2d.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"

using namespace facetex;
using kernels::Impl;

namespace {

// README §4: augment images within 1e-4 of their scale (observed <= 4e-6); a float64 replay against the
// float64 outputs to rounding.
constexpr double kImageTolerance = 1e-4;
constexpr double kFloat64Tolerance = 1e-9;

at::Tensor translate2d(double tx, double ty, const at::TensorOptions& opt) {
  return at::tensor({1.0, 0.0, tx, 0.0, 1.0, ty, 0.0, 0.0, 1.0}, opt).reshape({3, 3});
}
at::Tensor scale2d(double sx, double sy, const at::TensorOptions& opt) {
  return at::tensor({sx, 0.0, 0.0, 0.0, sy, 0.0, 0.0, 0.0, 1.0}, opt).reshape({3, 3});
}

struct Replay {
  std::array<int, 4> margins;  // left, right, top, bottom (the file's order)
  at::Tensor G_inv_grid, images_geom, images_aug;
};

// Steps 1-7 of §3.8 in the dtype of `images` (the matrices are converted to it).
Replay replay(const at::Tensor& images_in, const at::Tensor& G_inv_pixel, const at::Tensor& C,
              const at::Tensor& Hz_geom) {
  const at::TensorOptions opt = images_in.options();
  const int64_t batch = images_in.size(0), channels = images_in.size(1);
  const int64_t height = images_in.size(2), width = images_in.size(3);
  const int64_t hz_pad = Hz_geom.size(0) / 4;
  at::Tensor G = G_inv_pixel.to(opt);
  at::Tensor images = images_in;

  // 1. Padding from where the four corners land, shared by the whole batch.
  const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
  const at::Tensor corners = at::tensor({-cx, -cy, 1.0, cx, -cy, 1.0, cx, cy, 1.0, -cx, cy, 1.0}, opt).reshape({4, 3});
  const at::Tensor moved = at::matmul(G, corners.t());                    // [N, 3, 4]
  const at::Tensor xy = moved.slice(1, 0, 2).permute({1, 0, 2}).flatten(1);  // [2, N*4]
  at::Tensor margin = at::cat({-xy, xy}).amax(1);                          // [max(-x), max(-y), max(x), max(y)]
  margin = margin + at::tensor({2.0 * hz_pad - cx, 2.0 * hz_pad - cy, 2.0 * hz_pad - cx, 2.0 * hz_pad - cy}, opt);
  margin = margin.clamp_min(0.0);
  margin = at::minimum(margin, at::tensor({width - 1.0, height - 1.0, width - 1.0, height - 1.0}, opt));
  const at::Tensor m = margin.ceil().to(at::kInt);
  const int mx0 = m[0].item<int>(), my0 = m[1].item<int>(), mx1 = m[2].item<int>(), my1 = m[3].item<int>();

  // 2. Reflect-pad and move the origin.
  images = at::reflection_pad2d(images, {mx0, mx1, my0, my1});
  G = at::matmul(translate2d((mx0 - mx1) / 2.0, (my0 - my1) / 2.0, opt), G);

  // 3. Upsample x2 with the separable sym6 filter.
  images = kernels::upsample2d(images, Hz_geom.to(opt), 2, 0, false, 1.0, Impl::kReference);
  G = at::matmul(at::matmul(scale2d(2, 2, opt), G), scale2d(0.5, 0.5, opt));
  G = at::matmul(at::matmul(translate2d(-0.5, -0.5, opt), G), translate2d(0.5, 0.5, opt));

  // 4. To normalised coordinates of the (padded, upsampled) input and of the output grid.
  const int64_t out_h = (height + 2 * hz_pad) * 2, out_w = (width + 2 * hz_pad) * 2;
  G = at::matmul(at::matmul(scale2d(2.0 / images.size(3), 2.0 / images.size(2), opt), G),
                 scale2d(out_w / 2.0, out_h / 2.0, opt));

  // 5. Sample.
  const at::Tensor grid = at::affine_grid_generator(G.slice(1, 0, 2), {batch, channels, out_h, out_w}, false);
  images = kernels::grid_sample(images, grid, Impl::kReference);

  // 6. Downsample x2 and crop back to H x W.
  images = kernels::downsample2d(images, Hz_geom.to(opt), 2, static_cast<int>(-2 * hz_pad), true, 1.0,
                                 Impl::kReference);
  const at::Tensor geom = images;

  // 7. Colour: C[:, :3, :3] @ rgb + C[:, :3, 3].
  const at::Tensor Cm = C.to(opt);
  const at::Tensor flat = images.reshape({batch, channels, height * width});
  const at::Tensor aug = (at::matmul(Cm.slice(1, 0, 3).slice(2, 0, 3), flat) + Cm.slice(1, 0, 3).slice(2, 3, 4))
                             .reshape({batch, channels, height, width});
  return {{mx0, mx1, my0, my1}, G, geom, aug};
}

}  // namespace

TEST(AugmentReplay, GeometricAndColourStagesMatchTheReferencePipe) {
  h5::Id file = h5::open_file(test::parity_file_path());
  for (const std::string name : {"p0", "p1"}) {
    SCOPED_TRACE("augment_pipe/" + name);
    if (!h5::exists(file, "augment_pipe") || !h5::exists(h5::open_group(file, "augment_pipe"), name)) {
      ADD_FAILURE() << test::parity_file_path() << " has no group augment_pipe/" << name;
      continue;
    }
    try {
      h5::Id group = h5::open_group(file, "augment_pipe/" + name);
      const at::Tensor images = test::read_tensor(group, "inputs/images");
      const at::Tensor G_inv_pixel = test::read_tensor(group, "outputs/G_inv_pixel");
      const at::Tensor C = test::read_tensor(group, "outputs/C");
      const at::Tensor Hz_geom = test::read_tensor(group, "params/A/Hz_geom");

      const Replay r = replay(images, G_inv_pixel, C, Hz_geom);
      const at::Tensor margins = test::read_tensor(group, "outputs/margins");
      ASSERT_EQ(margins.numel(), 4);
      for (int i = 0; i < 4; ++i) EXPECT_EQ(r.margins[i], margins[i].item<int>()) << "margin " << i;
      const double err_grid = test::normalised_max_error(r.G_inv_grid, test::read_tensor(group, "outputs/G_inv_grid"));
      const double err_geom = test::normalised_max_error(r.images_geom, test::read_tensor(group, "outputs/images_geom"));
      const double err_aug = test::normalised_max_error(r.images_aug, test::read_tensor(group, "outputs/images_aug"));
      EXPECT_LE(err_grid, 1e-6);
      EXPECT_LE(err_geom, kImageTolerance);
      EXPECT_LE(err_aug, kImageTolerance);

      std::string f64_text = "no outputs_f64";
      if (h5::exists(group, "outputs_f64")) {
        const Replay r64 = replay(images.to(at::kDouble), G_inv_pixel, C, Hz_geom);
        const double err64 = test::normalised_max_error(r64.images_aug, test::read_tensor(group, "outputs_f64/images_aug"));
        EXPECT_LE(err64, kFloat64Tolerance);
        f64_text = fmt::format("float64 images_aug {:.1e}", err64);
      }
      std::printf("[parity] augment_pipe/%s margins [%d %d %d %d] ok; G_inv_grid %.1e, images_geom %.1e, "
                  "images_aug %.1e; %s\n",
                  name.c_str(), r.margins[0], r.margins[1], r.margins[2], r.margins[3], err_grid, err_geom, err_aug,
                  f64_text.c_str());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "augment_pipe/" << name << ": " << e.what();
    }
  }
}
