#include "kernels/dispatch.h"

#include <ATen/ATen.h>

#include <atomic>
#include <string>

#include "core/env_param.h"
#include "core/error.h"
#include "kernels/impl_choice.h"

namespace facetex::kernels {
namespace {

// -1: not chosen yet (FACETEX_KERNELS is read on first use); otherwise the Impl's value. An atomic rather than a
// function-local static so that set_default_impl() from a test or benchmark wins over the environment.
constexpr int kUnset = -1;
std::atomic<int> g_default_impl{kUnset};

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::kAuto: return "auto";
    case Impl::kReference: return "ref";
    case Impl::kCuda: return "cuda";
  }
  return "?";
}

bool cuda_dtype_supported(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return t == at::kFloat || t == at::kHalf || t == at::kDouble;
}

}  // namespace

namespace detail {

Impl parse_impl(const std::string& text, const char* source) {
  if (text == "auto") return Impl::kAuto;
  if (text == "ref") return Impl::kReference;
  if (text == "cuda") return Impl::kCuda;
  throw UsageError(fmt::format("{}='{}' is not a kernel implementation: use auto, ref or cuda", source, text));
}

bool use_cuda_kernel(Impl requested, const at::Tensor& x, const char* op) {
  const Impl impl = requested == Impl::kAuto ? default_impl() : requested;
  if (impl == Impl::kReference) return false;
#ifdef FACETEX_HAVE_TORCH_CUDA
  const bool possible = x.defined() && x.is_cuda() && cuda_dtype_supported(x);
  if (impl == Impl::kAuto) return possible;
  FACETEX_CHECK_RUNTIME(possible,
                        "{}: the CUDA kernel was requested (Impl::kCuda or FACETEX_KERNELS=cuda) but the input is a "
                        "{} tensor of dtype {}; the CUDA kernels take CUDA float32/float16/float64 tensors",
                        op, x.defined() ? c10::DeviceTypeName(x.device().type(), true) : "undefined",
                        x.defined() ? std::string(c10::toString(x.scalar_type())) : "none");
  return true;
#else
  (void)x;
  (void)cuda_dtype_supported;
  FACETEX_CHECK_USAGE(impl == Impl::kAuto,
                      "{}: the CUDA kernel was requested (Impl::kCuda or FACETEX_KERNELS=cuda) but this build has no "
                      "CUDA kernels (it needs nvcc and a LibTorch with CUDA)",
                      op);
  return false;
#endif
}

}  // namespace detail

Impl default_impl() {
  int value = g_default_impl.load(std::memory_order_relaxed);
  if (value == kUnset) {
    // Parsed on first use, not at static-initialisation time, so a bad value surfaces as a UsageError from a
    // kernel call (the CLI maps it to exit code 2) instead of terminating the process before main().
    const Impl parsed = detail::parse_impl(env_string("FACETEX_KERNELS", impl_name(Impl::kAuto)), "FACETEX_KERNELS");
    int expected = kUnset;
    g_default_impl.compare_exchange_strong(expected, static_cast<int>(parsed));
    value = g_default_impl.load(std::memory_order_relaxed);
  }
  return static_cast<Impl>(value);
}

void set_default_impl(Impl impl) { g_default_impl.store(static_cast<int>(impl), std::memory_order_relaxed); }

}  // namespace facetex::kernels
