// upfirdn2d: upsample (zero insertion), pad (negative = crop), FIR filter, downsample — per channel, NCHW.
// Semantics exactly as StyleGAN2-ADA's torch_utils/ops/upfirdn2d.py (see the parity README §3.7):
//   1. insert up-1 zeros after every sample along each axis;  2. pad [x0, x1, y0, y1] (negative crops);
//   3. convolve with f (true convolution unless flip_filter; a 2-D filter is multiplied by gain, a 1-D filter is
//      applied separably, rows then columns, each pass multiplied by sqrt(gain)); keep fully overlapping positions;
//   4. keep every down-th row/column starting at 0.
// Differentiable to any order (the backward is again an upfirdn2d).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

#include "kernels/dispatch.h"

namespace facetex::kernels {

struct Upfirdn2dArgs {
  int up_x = 1, up_y = 1;
  int down_x = 1, down_y = 1;
  std::array<int, 4> padding = {0, 0, 0, 0};  // x0, x1, y0, y1
  bool flip_filter = false;
  double gain = 1.0;
};

// x: [N, C, H, W]; f: [fh, fw] (2-D) or [fw] (1-D, separable); float32/float16/float64.
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dArgs& args, Impl impl = Impl::kAuto);

// The reference's setup_filter: a list of taps (< 8 taps: outer product -> 2-D; >= 8 taps: stays 1-D unless
// `separable` says otherwise), optionally normalised to sum 1, flipped, and scaled by gain^(ndim/2).
at::Tensor setup_filter(const std::vector<double>& taps, bool normalize = true, bool flip_filter = false,
                        double gain = 1.0, int separable = -1 /* -1: auto */);

// The reference's helpers, with their padding rules (README §3.7):
//   upsample2d: padding [(fw+up-1)//2 + p, (fw-up)//2 + p, ...], gain up^2 (times `gain`).
//   downsample2d: padding [p + (fw-down+1)//2, p + (fw-down)//2, ...], gain 1 (times `gain`).
//   filter2d: padding [p + fw//2, p + (fw-1)//2, ...].
at::Tensor upsample2d(const at::Tensor& x, const at::Tensor& f, int up = 2, int padding = 0, bool flip_filter = false,
                      double gain = 1.0, Impl impl = Impl::kAuto);
at::Tensor downsample2d(const at::Tensor& x, const at::Tensor& f, int down = 2, int padding = 0,
                        bool flip_filter = false, double gain = 1.0, Impl impl = Impl::kAuto);
at::Tensor filter2d(const at::Tensor& x, const at::Tensor& f, int padding = 0, bool flip_filter = false,
                    double gain = 1.0, Impl impl = Impl::kAuto);

// Filter width/height as the reference's _get_filter_size (1-D filters are square).
std::array<int, 2> filter_size(const at::Tensor& f);

}  // namespace facetex::kernels
