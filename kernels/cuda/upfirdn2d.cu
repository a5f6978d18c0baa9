// upfirdn2d CUDA kernels: a generic one (any factors, any filter size, one thread per output) and a shared-memory
// tiled one, compiled for the shapes the networks and the augmentation use (2x up / 2x down / plain filtering with
// 4x4 filters; 2x up / 2x down with the 12-tap sym6 filter, applied as two 1-D passes).
//
// Both evaluate, for output (oy, ox), the correlation of the zero-stuffed, padded signal with the (flipped unless
// flip_filter) filter: output x reads stuffed positions mid + t, t in [0, f_w), mid = ox * down - pad_x0; only
// positions that are multiples of `up` hold samples, input index (mid + t) / up, so the taps actually used are
// t = ix * up - mid for ix in [ceil(mid / up), floor((mid + f_w - 1) / up)] — no multiplications by inserted zeros.
#include "kernels/cuda/element.cuh"
#include "kernels/cuda/launchers.h"

namespace facetex::kernels::cuda {
namespace {

using element::ceil_div;
using element::compute_t;
using element::floor_div;
using element::load;
using element::store;

constexpr int kThreads = 256;

template <typename T>
__global__ void upfirdn2d_generic_kernel(Upfirdn2dLaunch p) {
  using Acc = compute_t<T>;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const Acc* f = static_cast<const Acc*>(p.f);
  const int64_t total = static_cast<int64_t>(p.batch) * p.channels * p.out_h * p.out_w;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // x fastest, so neighbouring threads write neighbouring outputs.
    const int ox = static_cast<int>(idx % p.out_w);
    int64_t rest = idx / p.out_w;
    const int oy = static_cast<int>(rest % p.out_h);
    rest /= p.out_h;
    const int c = static_cast<int>(rest % p.channels);
    const int n = static_cast<int>(rest / p.channels);

    const int mid_x = ox * p.down_x - p.pad_x0;
    const int mid_y = oy * p.down_y - p.pad_y0;
    const int ix_begin = max(ceil_div(mid_x, p.up_x), 0);
    const int ix_end = min(floor_div(mid_x + p.f_w - 1, p.up_x), p.in_w - 1);
    const int iy_begin = max(ceil_div(mid_y, p.up_y), 0);
    const int iy_end = min(floor_div(mid_y + p.f_h - 1, p.up_y), p.in_h - 1);

    const T* plane = x + n * p.x_stride_n + c * p.x_stride_c;
    Acc acc = 0;
    for (int iy = iy_begin; iy <= iy_end; ++iy) {
      const int ty = iy * p.up_y - mid_y;
      const int fy = p.flip_filter ? ty : p.f_h - 1 - ty;
      for (int ix = ix_begin; ix <= ix_end; ++ix) {
        const int tx = ix * p.up_x - mid_x;
        const int fx = p.flip_filter ? tx : p.f_w - 1 - tx;
        acc += load(plane, iy * p.x_stride_y + ix * p.x_stride_x) * f[fy * p.f_w + fx];
      }
    }
    store(y, n * p.y_stride_n + c * p.y_stride_c + oy * p.y_stride_y + ox * p.y_stride_x,
          acc * static_cast<Acc>(p.gain));
  }
}

// One block computes a kTileH x kTileW output tile of one image plane (looping over planes along grid z): it
// stages the tile's input footprint and the filter taps in shared memory, so each input sample is read from global
// memory once per tile instead of once per tap. Factors and filter size are compile-time, so the tap loops unroll.
template <typename T, int kUpX, int kUpY, int kDownX, int kDownY, int kFW, int kFH>
__global__ void upfirdn2d_tiled_kernel(Upfirdn2dLaunch p) {
  using Acc = compute_t<T>;
  constexpr int kTileW = 32, kTileH = 16;
  // Footprint of the tile in input samples; +2 because the tile's first input index is rounded down, not up.
  constexpr int kInW = ((kTileW - 1) * kDownX + kFW - 1) / kUpX + 2;
  constexpr int kInH = ((kTileH - 1) * kDownY + kFH - 1) / kUpY + 2;
  constexpr int kTapsX = (kFW + kUpX - 1) / kUpX;  // taps that can meet samples, per axis
  constexpr int kTapsY = (kFH + kUpY - 1) / kUpY;
  __shared__ Acc taps[kFH][kFW];  // in correlation order: taps[ty][tx] multiplies stuffed position mid + t
  __shared__ Acc tile[kInH][kInW];

  const Acc* f = static_cast<const Acc*>(p.f);
  for (int i = threadIdx.x; i < kFH * kFW; i += blockDim.x) {
    const int ty = i / kFW, tx = i % kFW;
    const int fy = p.flip_filter ? ty : kFH - 1 - ty;
    const int fx = p.flip_filter ? tx : kFW - 1 - tx;
    taps[ty][tx] = f[fy * kFW + fx];
  }

  const int tile_x0 = blockIdx.x * kTileW, tile_y0 = blockIdx.y * kTileH;
  const int in_x0 = floor_div(tile_x0 * kDownX - p.pad_x0, kUpX);
  const int in_y0 = floor_div(tile_y0 * kDownY - p.pad_y0, kUpY);
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const int64_t planes = static_cast<int64_t>(p.batch) * p.channels;

  for (int64_t plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const int n = static_cast<int>(plane / p.channels), c = static_cast<int>(plane % p.channels);
    const T* in = x + n * p.x_stride_n + c * p.x_stride_c;
    __syncthreads();  // the previous plane's tile (and, the first time, the taps) are no longer being read
    for (int i = threadIdx.x; i < kInH * kInW; i += blockDim.x) {
      const int gy = in_y0 + i / kInW, gx = in_x0 + i % kInW;
      const bool inside = gx >= 0 && gx < p.in_w && gy >= 0 && gy < p.in_h;
      tile[i / kInW][i % kInW] = inside ? load(in, gy * p.x_stride_y + gx * p.x_stride_x) : Acc(0);
    }
    __syncthreads();

    for (int i = threadIdx.x; i < kTileH * kTileW; i += blockDim.x) {
      const int oy = tile_y0 + i / kTileW, ox = tile_x0 + i % kTileW;
      if (oy >= p.out_h || ox >= p.out_w) continue;
      const int mid_x = ox * kDownX - p.pad_x0, mid_y = oy * kDownY - p.pad_y0;
      const int first_ix = ceil_div(mid_x, kUpX), first_iy = ceil_div(mid_y, kUpY);
      const int tx0 = first_ix * kUpX - mid_x, ty0 = first_iy * kUpY - mid_y;  // in [0, up)
      const int rx = first_ix - in_x0, ry = first_iy - in_y0;
      Acc acc = 0;
#pragma unroll
      for (int ky = 0; ky < kTapsY; ++ky) {
        const int ty = ty0 + ky * kUpY;
#pragma unroll
        for (int kx = 0; kx < kTapsX; ++kx) {
          const int tx = tx0 + kx * kUpX;
          if (ty < kFH && tx < kFW) acc += tile[ry + ky][rx + kx] * taps[ty][tx];
        }
      }
      store(y, n * p.y_stride_n + c * p.y_stride_c + oy * p.y_stride_y + ox * p.y_stride_x,
            acc * static_cast<Acc>(p.gain));
    }
  }
}

template <typename T, int kUpX, int kUpY, int kDownX, int kDownY, int kFW, int kFH>
bool try_launch_tiled(const Upfirdn2dLaunch& p, cudaStream_t stream) {
  if (p.up_x != kUpX || p.up_y != kUpY || p.down_x != kDownX || p.down_y != kDownY || p.f_w != kFW ||
      p.f_h != kFH) {
    return false;
  }
  const int64_t planes = static_cast<int64_t>(p.batch) * p.channels;
  const dim3 grid((p.out_w + 31) / 32, (p.out_h + 15) / 16, static_cast<unsigned>(planes < 65535 ? planes : 65535));
  upfirdn2d_tiled_kernel<T, kUpX, kUpY, kDownX, kDownY, kFW, kFH><<<grid, kThreads, 0, stream>>>(p);
  return true;
}

template <typename T>
bool launch_tiled_if_specialised(const Upfirdn2dLaunch& p, cudaStream_t stream) {
  // The networks: upsample2d / filter2d / downsample2d with the 4x4 [1,3,3,1] filter.
  return try_launch_tiled<T, 2, 2, 1, 1, 4, 4>(p, stream) || try_launch_tiled<T, 1, 1, 1, 1, 4, 4>(p, stream) ||
         try_launch_tiled<T, 1, 1, 2, 2, 4, 4>(p, stream) ||
         // The augmentation: the 12-tap sym6 filter, one pass along x ([1, 12]) and one along y ([12, 1]).
         try_launch_tiled<T, 2, 1, 1, 1, 12, 1>(p, stream) || try_launch_tiled<T, 1, 2, 1, 1, 1, 12>(p, stream) ||
         try_launch_tiled<T, 1, 1, 2, 1, 12, 1>(p, stream) || try_launch_tiled<T, 1, 1, 1, 2, 1, 12>(p, stream);
}

template <typename T>
void launch_generic(const Upfirdn2dLaunch& p, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(p.batch) * p.channels * p.out_h * p.out_w;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  upfirdn2d_generic_kernel<T><<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), kThreads, 0, stream>>>(p);
}

}  // namespace

cudaError_t upfirdn2d(const Upfirdn2dLaunch& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.channels <= 0 || p.out_h <= 0 || p.out_w <= 0) return cudaSuccess;
  if (p.x == nullptr || p.y == nullptr || p.f == nullptr || p.f_w < 1 || p.f_h < 1 || p.up_x < 1 || p.up_y < 1 ||
      p.down_x < 1 || p.down_y < 1) {
    return cudaErrorInvalidValue;
  }
  switch (p.dtype) {
    case DType::kFloat32:
      if (!launch_tiled_if_specialised<float>(p, stream)) launch_generic<float>(p, stream);
      break;
    case DType::kFloat16:
      if (!launch_tiled_if_specialised<__half>(p, stream)) launch_generic<__half>(p, stream);
      break;
    case DType::kFloat64:  // rare (tests, float64 checks): the generic kernel is enough
      launch_generic<double>(p, stream);
      break;
  }
  return cudaGetLastError();
}

}  // namespace facetex::kernels::cuda
