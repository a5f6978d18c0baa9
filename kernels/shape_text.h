// Internal to kernels/: tensor shapes as text for error messages ("[2, 3, 9, 11]", "undefined").
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace facetex::kernels::detail {

inline std::string shape_text(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string text = "[";
  for (int64_t i = 0; i < t.dim(); ++i) text += (i ? ", " : "") + std::to_string(t.size(i));
  return text + "]";
}

}  // namespace facetex::kernels::detail
