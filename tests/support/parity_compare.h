// Tensor comparisons in the terms of the parity README (shared/testdata/stylegan2/README.md §4), for parity and
// implementation-agreement tests. Both tensors are compared in float64 on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

namespace facetex::test {

// max|actual - expected| / max|expected| (the README's "normalised max"); when max|expected| == 0, the plain max.
double normalised_max_error(const at::Tensor& actual, const at::Tensor& expected);

// ||actual - expected||_2 / ||expected||_2; when ||expected|| == 0, the plain norm.
double relative_l2_error(const at::Tensor& actual, const at::Tensor& expected);

}  // namespace facetex::test
