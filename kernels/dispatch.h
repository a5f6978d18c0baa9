// Which implementation a kernel call uses. Every op has a CPU reference built from ATen ops (any device, any
// derivative order through autograd) and, in CUDA builds, a hand-written CUDA kernel with its own autograd
// Function. kAuto picks CUDA for CUDA tensors when the build has it, else the reference. FACETEX_KERNELS=ref
// forces the reference everywhere (for A/B checks and benchmarks); =cuda makes a missing CUDA path an error.
#pragma once

namespace facetex::kernels {

enum class Impl { kAuto, kReference, kCuda };

// The process-wide choice (from FACETEX_KERNELS, overridable for tests and benchmarks).
Impl default_impl();
void set_default_impl(Impl impl);

}  // namespace facetex::kernels
