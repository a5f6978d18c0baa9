#include "tests/support/parity_compare.h"

#include <ATen/ATen.h>

#include "core/error.h"

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

}  // namespace facetex::test
