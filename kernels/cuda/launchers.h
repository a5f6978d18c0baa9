// Torch-free C++ entry points of the CUDA kernels in this folder. Each takes raw device pointers and a stream
// and returns the launch status; the torch adapters (kernels/*.cpp, built only with a CUDA LibTorch) call them.
// Keeping torch out of .cu files keeps nvcc fast (a torch header costs ~40-90 s per .cu) and lets CI compile-check
// the kernels wherever nvcc exists, even against a CPU-only LibTorch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace facetex::kernels::cuda {

// out[i] = float(in[i]) / 127.5f - 1.0f  (the reference's x / 127.5 - 1 in float32).
cudaError_t normalize_u8_to_f32(const uint8_t* in, float* out, int64_t n, cudaStream_t stream);

}  // namespace facetex::kernels::cuda

namespace facetex::kernels::cuda {

// Element types the upfirdn2d and bias_act kernels are compiled for. float16 is computed in float32, float64 in
// float64.
enum class DType { kFloat32, kFloat16, kFloat64 };

// ---- upfirdn2d ------------------------------------------------------------------------------------------------
// One pass of upfirdn2d with a 2-D filter (a separable filter is two passes: [1, taps] along x, then [taps, 1]
// along y). Per image plane: insert up-1 zeros after every sample, pad by pad_x0/pad_y0 before (negative crops; the
// far side is implied by out_w/out_h), convolve with the filter (correlate when flip_filter), keep every down-th
// sample, multiply by gain. Strides are in elements, so x may be a view (channels_last, slices).
struct Upfirdn2dLaunch {
  DType dtype = DType::kFloat32;
  const void* x = nullptr;  // [batch, channels, in_h, in_w]
  void* y = nullptr;        // [batch, channels, out_h, out_w]
  const void* f = nullptr;  // [f_h, f_w] row-major; float32 for kFloat32/kFloat16, float64 for kFloat64
  int batch = 0, channels = 0;
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t x_stride_n = 0, x_stride_c = 0, x_stride_y = 0, x_stride_x = 0;
  int64_t y_stride_n = 0, y_stride_c = 0, y_stride_y = 0, y_stride_x = 0;
  int f_h = 1, f_w = 1;
  int up_x = 1, up_y = 1, down_x = 1, down_y = 1;
  int pad_x0 = 0, pad_y0 = 0;
  bool flip_filter = false;
  double gain = 1.0;
};
cudaError_t upfirdn2d(const Upfirdn2dLaunch& p, cudaStream_t stream);

// ---- bias_act -------------------------------------------------------------------------------------------------
// Same order as facetex::kernels::Activation (the adapter converts explicitly, it does not rely on the values).
enum class BiasActFunc { kLinear, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

// The reference kernel's three modes over contiguous buffers of `size` elements, with the bias b[(i / b_step) %
// b_size] added to the pre-activation:
//   mode 0 (forward):      y = clamp(act(x + b) * gain, -clamp, clamp)                        (clamp < 0: none)
//   mode 1 (first order):  y = x * act'(xref + b) * gain, 0 where the forward output was clamped; x is the
//                          incoming gradient. act' is evaluated from yref (the forward output) or, for swish, from
//                          xref; relu/lrelu/linear need only yref.
//   mode 2 (second order): y = x * dy * act''(xref + b) * gain, 0 where clamped; x is the gradient arriving at
//                          mode 1's output, dy mode 1's incoming gradient. Only for tanh, sigmoid, elu, selu,
//                          softplus and swish (the others have act'' = 0 almost everywhere).
// "Clamped" means the forward output yref is not strictly inside (-clamp, clamp), as in the reference kernel.
struct BiasActLaunch {
  DType dtype = DType::kFloat32;
  const void* x = nullptr;
  const void* b = nullptr;     // [b_size] or null
  const void* xref = nullptr;  // modes 1-2: the forward input (without bias) or null
  const void* yref = nullptr;  // modes 1-2: the forward output or null (swish recomputes it from xref)
  const void* dy = nullptr;    // mode 2 only
  void* y = nullptr;
  int64_t size = 0;
  int64_t b_size = 0, b_step = 1;
  int mode = 0;
  BiasActFunc func = BiasActFunc::kLinear;
  double alpha = 0.0, gain = 1.0, clamp = -1.0;
};
cudaError_t bias_act(const BiasActLaunch& p, cudaStream_t stream);

}  // namespace facetex::kernels::cuda

namespace facetex::kernels::cuda {

// ---- rasterize ------------------------------------------------------------------------------------------------
// Hard rasterisation of a batch of meshes sharing one face list (see kernels/rasterize.h for the conventions), in
// two passes that give the same result as the CPU rasteriser bit for bit (kernels/cuda/raster_math.h):
//   pass 1: one thread per (image, triangle) tests the pixel centres in its bounding box and atomicMin's the 64-bit
//           key (depth bits << 32 | face) into `zbuffer`; positive float depths order like their bit patterns, so
//           the minimum key is the nearest face, ties going to the smaller face index. Triangles whose box exceeds
//           a few hundred pixels are queued and rasterised by whole thread blocks instead (load balance).
//   pass 2: one thread per pixel decodes the winning face and recomputes its perspective-correct barycentrics.
// All buffers are contiguous device memory; the launcher initialises the workspaces itself (on `stream`).
struct RasterizeLaunch {
  const float* vertices = nullptr;  // [batch, num_vertices, 3]: pixel column, pixel row, depth
  const int32_t* faces = nullptr;   // [num_faces, 3], indices in [0, num_vertices) (checked by the caller)
  int batch = 0, num_vertices = 0, num_faces = 0;  // batch * num_faces must fit in int32
  int height = 0, width = 0;                       // each below 2^21
  unsigned long long* zbuffer = nullptr;  // workspace [batch, height, width]
  int32_t* big_triangles = nullptr;       // workspace [batch * num_faces + 1]: a counter, then the queue
  int32_t* face_index = nullptr;          // out [batch, height, width], -1 where nothing covers
  float* barycentric = nullptr;           // out [batch, height, width, 3], 0 where nothing covers
  float* depth = nullptr;                 // out [batch, height, width], 0 where nothing covers
};
cudaError_t rasterize(const RasterizeLaunch& p, cudaStream_t stream);

// Memory in use on `device` (total - free, as nvidia-smi counts it: every process and the caching allocator's pool).
cudaError_t device_memory_used(int device, int64_t* used_bytes, int64_t* total_bytes);

}  // namespace facetex::kernels::cuda
