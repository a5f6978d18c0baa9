// Internal to kernels/: how a call's Impl argument and the tensor it runs on become "CUDA kernel or reference".
// Kept out of the public dispatch.h so that callers only ever see the Impl enum.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "kernels/dispatch.h"

namespace facetex::kernels::detail {

// "auto" | "ref" | "cuda" (case-sensitive, as documented for FACETEX_KERNELS); anything else is a UsageError
// naming `source` (the variable or option the text came from).
Impl parse_impl(const std::string& text, const char* source);

// Whether `op` should run its hand-written CUDA kernel on `x`: `requested` (kAuto resolved through
// default_impl()) says which implementation is wanted. kAuto means CUDA exactly when this build has the CUDA
// adapters and `x` is a CUDA tensor of a dtype the kernels support (float32, float16, float64); kReference is
// never CUDA; kCuda demands it and throws when it is impossible (UsageError for a build without CUDA kernels,
// RuntimeError for a tensor the kernels cannot take), so a forced A/B run never silently measures the reference.
bool use_cuda_kernel(Impl requested, const at::Tensor& x, const char* op);

}  // namespace facetex::kernels::detail
