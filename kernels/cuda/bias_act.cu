// bias_act CUDA kernel: forward (mode 0), first-order gradient (mode 1) and second-order gradient (mode 2) of
// y = clamp(act(x + b) * gain, -clamp, clamp), one element per thread iteration; see launchers.h for the modes.
// Derivatives are expressed through the saved forward output where that is exact (yy = y / gain = act(x + b)),
// as the reference kernel does, so the forward input need not be kept for relu/lrelu.
#include "kernels/cuda/element.cuh"
#include "kernels/cuda/launchers.h"

namespace facetex::kernels::cuda {
namespace {

using element::compute_t;
using element::load;
using element::store;

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSoftplusThreshold = 20.0;  // PyTorch's softplus returns x itself above this, as the reference

// Explicit float/double overloads, so the float path never silently computes in double.
__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return ::exp(x); }
__device__ __forceinline__ float expm1_(float x) { return expm1f(x); }
__device__ __forceinline__ double expm1_(double x) { return ::expm1(x); }
__device__ __forceinline__ float log1p_(float x) { return log1pf(x); }
__device__ __forceinline__ double log1p_(double x) { return ::log1p(x); }
__device__ __forceinline__ float tanh_(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh_(double x) { return ::tanh(x); }

template <typename Acc>
__device__ __forceinline__ Acc sigmoid(Acc x) {
  return Acc(1) / (Acc(1) + exp_(-x));
}

template <BiasActFunc F, typename Acc>
__device__ __forceinline__ Acc activation(Acc x, Acc alpha) {
  if (F == BiasActFunc::kLinear) return x;
  if (F == BiasActFunc::kRelu) return x > Acc(0) ? x : Acc(0);
  if (F == BiasActFunc::kLrelu) return x > Acc(0) ? x : x * alpha;
  if (F == BiasActFunc::kTanh) return tanh_(x);
  if (F == BiasActFunc::kSigmoid) return sigmoid(x);
  if (F == BiasActFunc::kElu) return x > Acc(0) ? x : expm1_(x);
  if (F == BiasActFunc::kSelu) return x > Acc(0) ? Acc(kSeluScale) * x : Acc(kSeluScale * kSeluAlpha) * expm1_(x);
  if (F == BiasActFunc::kSoftplus) return x > Acc(kSoftplusThreshold) ? x : log1p_(exp_(x));
  return x * sigmoid(x);  // swish
}

// act'(x + b), from yy = act(x + b) or, for swish, from xb = x + b.
template <BiasActFunc F, typename Acc>
__device__ __forceinline__ Acc first_derivative(Acc xb, Acc yy, Acc alpha) {
  if (F == BiasActFunc::kLinear) return Acc(1);
  if (F == BiasActFunc::kRelu) return yy > Acc(0) ? Acc(1) : Acc(0);
  if (F == BiasActFunc::kLrelu) return yy > Acc(0) ? Acc(1) : alpha;
  if (F == BiasActFunc::kTanh) return Acc(1) - yy * yy;
  if (F == BiasActFunc::kSigmoid) return yy * (Acc(1) - yy);
  if (F == BiasActFunc::kElu) return yy >= Acc(0) ? Acc(1) : yy + Acc(1);
  if (F == BiasActFunc::kSelu) return yy >= Acc(0) ? Acc(kSeluScale) : yy + Acc(kSeluScale * kSeluAlpha);
  if (F == BiasActFunc::kSoftplus) return Acc(1) - exp_(-yy);  // = sigmoid(x + b)
  const Acc s = sigmoid(xb);                                   // swish
  return s * (Acc(1) + xb * (Acc(1) - s));
}

// act''(x + b), same inputs; zero for the piecewise-linear activations.
template <BiasActFunc F, typename Acc>
__device__ __forceinline__ Acc second_derivative(Acc xb, Acc yy) {
  if (F == BiasActFunc::kTanh) return Acc(-2) * yy * (Acc(1) - yy * yy);
  if (F == BiasActFunc::kSigmoid) return yy * (Acc(1) - yy) * (Acc(1) - Acc(2) * yy);
  if (F == BiasActFunc::kElu) return yy >= Acc(0) ? Acc(0) : yy + Acc(1);
  if (F == BiasActFunc::kSelu) return yy >= Acc(0) ? Acc(0) : yy + Acc(kSeluScale * kSeluAlpha);
  if (F == BiasActFunc::kSoftplus) {
    const Acc c = exp_(-yy);
    return c * (Acc(1) - c);
  }
  if (F == BiasActFunc::kSwish) {
    const Acc s = sigmoid(xb);
    return s * (Acc(1) - s) * (Acc(2) + xb * (Acc(1) - Acc(2) * s));
  }
  return Acc(0);
}

template <typename T, BiasActFunc F>
__global__ void bias_act_kernel(BiasActLaunch p) {
  using Acc = compute_t<T>;
  const T* x = static_cast<const T*>(p.x);
  const T* b = static_cast<const T*>(p.b);
  const T* xref = static_cast<const T*>(p.xref);
  const T* yref = static_cast<const T*>(p.yref);
  const T* dy = static_cast<const T*>(p.dy);
  T* y = static_cast<T*>(p.y);
  const Acc alpha = static_cast<Acc>(p.alpha), gain = static_cast<Acc>(p.gain), clamp = static_cast<Acc>(p.clamp);
  const bool clamping = p.clamp >= 0.0;

  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.size;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Acc bias = b != nullptr ? load(b, (i / p.b_step) % p.b_size) : Acc(0);
    Acc out;
    if (p.mode == 0) {
      out = activation<F>(load(x, i) + bias, alpha) * gain;
      // Comparisons rather than fmin/fmax so that a NaN stays NaN (the training loop watches for them).
      if (clamping) out = out < -clamp ? -clamp : (out > clamp ? clamp : out);
    } else {
      const Acc xb = xref != nullptr ? load(xref, i) + bias : Acc(0);
      // swish keeps only x (its y is cheap to recompute), every other function keeps y.
      const Acc y_forward = F == BiasActFunc::kSwish ? activation<F>(xb, alpha) * gain
                                                     : (yref != nullptr ? load(yref, i) : Acc(0));
      const Acc yy = gain != Acc(0) ? y_forward / gain : Acc(0);
      out = load(x, i) * gain *
            (p.mode == 1 ? first_derivative<F>(xb, yy, alpha) : second_derivative<F>(xb, yy) * load(dy, i));
      if (clamping && !(y_forward > -clamp && y_forward < clamp)) out = Acc(0);
    }
    store(y, i, out);
  }
}

template <typename T>
void launch(const BiasActLaunch& p, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t blocks = (p.size + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20));
  switch (p.func) {
    case BiasActFunc::kLinear: bias_act_kernel<T, BiasActFunc::kLinear><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kRelu: bias_act_kernel<T, BiasActFunc::kRelu><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kLrelu: bias_act_kernel<T, BiasActFunc::kLrelu><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kTanh: bias_act_kernel<T, BiasActFunc::kTanh><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kSigmoid: bias_act_kernel<T, BiasActFunc::kSigmoid><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kElu: bias_act_kernel<T, BiasActFunc::kElu><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kSelu: bias_act_kernel<T, BiasActFunc::kSelu><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kSoftplus: bias_act_kernel<T, BiasActFunc::kSoftplus><<<grid, kThreads, 0, stream>>>(p); break;
    case BiasActFunc::kSwish: bias_act_kernel<T, BiasActFunc::kSwish><<<grid, kThreads, 0, stream>>>(p); break;
  }
}

}  // namespace

cudaError_t bias_act(const BiasActLaunch& p, cudaStream_t stream) {
  if (p.size <= 0) return cudaSuccess;
  const bool bad_bias = p.b != nullptr && (p.b_size <= 0 || p.b_step <= 0);
  const bool bad_refs = p.mode != 0 && (p.func == BiasActFunc::kSwish ? p.xref == nullptr : false);
  if (p.x == nullptr || p.y == nullptr || p.mode < 0 || p.mode > 2 || (p.mode == 2 && p.dy == nullptr) || bad_bias ||
      bad_refs) {
    return cudaErrorInvalidValue;
  }
  switch (p.dtype) {
    case DType::kFloat32: launch<float>(p, stream); break;
    case DType::kFloat16: launch<__half>(p, stream); break;
    case DType::kFloat64: launch<double>(p, stream); break;
  }
  return cudaGetLastError();
}

}  // namespace facetex::kernels::cuda
