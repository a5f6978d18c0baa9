// fma(a, b, c) = a * b + c. One ATen op (addcmul) whose autograd already reduces each gradient to its input's
// broadcast shape, which is what the reference's custom Function does by hand; derivatives of any order.
#include "kernels/fma.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace facetex::kernels {

at::Tensor fma(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
  FACETEX_CHECK_RUNTIME(a.defined() && b.defined() && c.defined(), "fma: a, b and c must all be defined");
  return at::addcmul(c, a, b);
}

}  // namespace facetex::kernels
