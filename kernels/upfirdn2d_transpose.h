// Internal to kernels/: the arguments of the upfirdn2d that computes another upfirdn2d's input gradient (its
// transpose): up and down swapped, the filter flipped (flip_filter negated), the same gain, and the padding of the
// reference's formula [fw - px0 - 1, in_w*up_x - out_w*down_x + px0 - up_x + 1, fh - py0 - 1, ...]. The CUDA
// Function's backward uses it; the tests check it against the reference's autograd on the CPU.
#pragma once

#include <array>

#include "kernels/upfirdn2d.h"

namespace facetex::kernels::detail {

// `filter_wh` as filter_size(); `in_hw` / `out_hw` are the forward call's input and output (height, width).
Upfirdn2dArgs upfirdn2d_transpose_args(const Upfirdn2dArgs& forward, std::array<int, 2> filter_wh,
                                       std::array<int64_t, 2> in_hw, std::array<int64_t, 2> out_hw);

}  // namespace facetex::kernels::detail
