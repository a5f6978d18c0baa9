#include "tests/support/parity_compare.h"

#include <ATen/ATen.h>

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "core/h5.h"
#include "tests/support/parity_file.h"

namespace facetex::test {

double normalised_max_error(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.detach().to(at::kDouble).cpu(), e = expected.detach().to(at::kDouble).cpu();
  FACETEX_CHECK_RUNTIME(a.sizes() == e.sizes(), "normalised_max_error: shapes differ: {} vs {}",
                        c10::str(a.sizes()), c10::str(e.sizes()));
  if (e.numel() == 0) return 0.0;
  const double diff = (a - e).abs().max().item<double>();
  const double scale = e.abs().max().item<double>();
  return scale > 0.0 ? diff / scale : diff;
}

double relative_l2_error(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.detach().to(at::kDouble).cpu(), e = expected.detach().to(at::kDouble).cpu();
  FACETEX_CHECK_RUNTIME(a.sizes() == e.sizes(), "relative_l2_error: shapes differ: {} vs {}",
                        c10::str(a.sizes()), c10::str(e.sizes()));
  const double norm = e.norm().item<double>();
  const double diff = (a - e).norm().item<double>();
  return norm > 0.0 ? diff / norm : diff;
}

GradientSetCheck compare_gradient_set(hid_t group, const std::vector<std::pair<std::string, at::Tensor>>& ours,
                                      at::ScalarType precision, double set_tolerance) {
  const bool float64 = precision == at::kDouble;
  GradientSetCheck r;
  double err2 = 0, norm2 = 0;
  for (const auto& [name, grad] : ours) {
    if (!h5::exists(group, name)) continue;
    const at::Tensor ref = read_tensor(group, name).to(at::kDouble);
    const at::Tensor mine = grad.defined() ? grad.detach().to(at::kDouble).cpu() : at::zeros_like(ref);
    FACETEX_CHECK_RUNTIME(mine.sizes() == ref.sizes(), "{}: gradient shape {} vs the reference's {}", name,
                          c10::str(mine.sizes()), c10::str(ref.sizes()));
    const double norm = ref.norm().item<double>(), err = (mine - ref).norm().item<double>();
    err2 += err * err;
    norm2 += norm * norm;
    ++r.tensors;
    if (norm == 0) {
      if (err != 0) r.failures.push_back(fmt::format("{}: the reference gradient is zero, ours has norm {}", name, err));
      continue;
    }
    if (err / norm > r.worst_rel_l2) r.worst_rel_l2 = err / norm, r.worst = name;
    if (float64) {
      // Twice the reference's float32 rounding, and a floor of 1e-6 (a scalar such as noise_strength's gradient,
      // rounded once more when stored, came out 2.2e-7 from float64 where the attribute said 5.4e-8).
      h5::Id d = h5::open_dataset(group, name);
      const double tol = h5::has_attr(d, "f32_vs_f64_rel_l2")
                             ? 2 * h5::read_attr_double(d, "f32_vs_f64_rel_l2") + 1e-6
                             : set_tolerance;
      if (err > tol * norm) {
        r.failures.push_back(fmt::format("{}: relative L2 error {:.3e} (float64) exceeds {:.3e}, the reference's own "
                                         "float32 rounding with margin", name, err / norm, tol));
      }
    }
  }
  r.set_rel_l2 = norm2 > 0 ? std::sqrt(err2 / norm2) : std::sqrt(err2);
  return r;
}

}  // namespace facetex::test
