// Tensor comparisons in the terms of the parity README (shared/testdata/stylegan2/README.md §4), for parity and
// implementation-agreement tests. Both tensors are compared in float64 on the CPU.
#pragma once

#include <hdf5.h>

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace facetex::test {

// max|actual - expected| / max|expected| (the README's "normalised max"); when max|expected| == 0, the plain max.
double normalised_max_error(const at::Tensor& actual, const at::Tensor& expected);

// ||actual - expected||_2 / ||expected||_2; when ||expected|| == 0, the plain norm.
double relative_l2_error(const at::Tensor& actual, const at::Tensor& expected);

// A phase's parameter gradients against the reference's float32 set (`group`: one dataset per parameter, named
// like it, e.g. loss_terms/outputs/grad_Gpl/G). Parameters without a dataset are not compared; an undefined
// gradient counts as zero.
//  - float32 gradients are judged as one set: ||ours - ref||_2 <= set_tolerance * ||ref||_2 over all its tensors.
//    Single tensors are not asserted on: one leaky-ReLU pre-activation within float32 rounding of zero lands on
//    the other side in one implementation and not in the other, and moves the tensors it feeds by per cents (a
//    generated set moved a noise_strength gradient by 2.4% and forty path-length gradients by up to 0.9% that way,
//    where the set as a whole moved by far less); the worst tensor is reported as a diagnostic.
//  - float64 gradients are judged tensor by tensor against the reference's float32 values, within what the
//    reference's own float32 rounding put there — twice the dataset's f32_vs_f64_rel_l2 attribute, plus 1e-6:
//    float64 has no kink near zero to flip, so this is tight enough to see a detached pl_mean (0.7-1.3%) in any
//    one tensor. Without the attribute, set_tolerance per tensor.
//  Either way a zero reference tensor (a parameter that cannot influence the loss) must be matched by zeros.
struct GradientSetCheck {
  int tensors = 0;             // compared
  double set_rel_l2 = 0;       // ||ours - ref|| / ||ref|| over the whole set
  double worst_rel_l2 = 0;     // the worst single tensor (float32: diagnostic only)
  std::string worst;           // its name
  std::vector<std::string> failures;  // one line per failed tensor (float64 mode, zero references)
};
// `precision`: what the implementation ran in (kFloat or kDouble), given rather than read off the gradients, so
// that an undefined gradient of a float64 run is held to the float64 rule too.
GradientSetCheck compare_gradient_set(hid_t group, const std::vector<std::pair<std::string, at::Tensor>>& ours,
                                      at::ScalarType precision, double set_tolerance);

}  // namespace facetex::test
