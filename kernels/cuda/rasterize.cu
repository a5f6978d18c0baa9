// CUDA rasteriser (launcher in launchers.h): per-triangle coverage into a 64-bit atomic z-buffer, then a per-pixel
// resolve. All arithmetic that decides coverage, depth and barycentrics is raster_math.h, shared with the CPU
// rasteriser, so both give identical results; only the order of the work differs, and the atomicMin on
// (depth bits, face) makes the winner independent of that order.
#include "kernels/cuda/launchers.h"
#include "kernels/cuda/raster_math.h"

namespace facetex::kernels::cuda {
namespace {

using raster::Triangle;

constexpr int kThreads = 256;
// Bounding boxes larger than this many pixels go to the block-per-triangle pass: a thread looping over a
// near-full-screen triangle would keep its whole warp (and the kernel's tail) busy for milliseconds.
constexpr int64_t kBigTriangle = 256;
constexpr unsigned long long kEmptyKey = ~0ull;

__device__ __forceinline__ unsigned long long depth_key(float depth, int face) {
  return (static_cast<unsigned long long>(__float_as_uint(depth)) << 32) | static_cast<unsigned int>(face);
}

__device__ __forceinline__ bool load_triangle(const RasterizeLaunch& p, int image, int face, Triangle& t) {
  const int32_t* corner = p.faces + 3 * static_cast<int64_t>(face);
  const float* v = p.vertices + static_cast<int64_t>(image) * p.num_vertices * 3;
  return raster::setup_triangle(v + 3 * static_cast<int64_t>(corner[0]), v + 3 * static_cast<int64_t>(corner[1]),
                                v + 3 * static_cast<int64_t>(corner[2]), p.height, p.width, t);
}

__device__ __forceinline__ void draw_pixel(const RasterizeLaunch& p, const Triangle& t, int image, int face, int px,
                                           int py) {
  const int64_t P = raster::pixel_centre(px), Q = raster::pixel_centre(py);
  const int64_t e[3] = {raster::edge(t, 0, P, Q), raster::edge(t, 1, P, Q), raster::edge(t, 2, P, Q)};
  if (!raster::covers(t, e)) return;
  const int64_t pixel = (static_cast<int64_t>(image) * p.height + py) * p.width + px;
  atomicMin(p.zbuffer + pixel, depth_key(raster::depth_at(t, e), face));
}

// Pass 1a: one thread per (image, face); small triangles are drawn here, large ones queued for pass 1b.
__global__ void draw_small_triangles(RasterizeLaunch p) {
  const int64_t total = static_cast<int64_t>(p.batch) * p.num_faces;
  for (int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; id < total;
       id += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int image = static_cast<int>(id / p.num_faces), face = static_cast<int>(id % p.num_faces);
    Triangle t;
    if (!load_triangle(p, image, face, t)) continue;
    const int64_t box_w = t.x1 - t.x0 + 1, box_h = t.y1 - t.y0 + 1;
    if (box_w * box_h > kBigTriangle) {
      const int slot = atomicAdd(p.big_triangles, 1);
      p.big_triangles[1 + slot] = static_cast<int32_t>(id);
      continue;
    }
    for (int py = t.y0; py <= t.y1; ++py) {
      for (int px = t.x0; px <= t.x1; ++px) draw_pixel(p, t, image, face, px, py);
    }
  }
}

// Pass 1b: one block per queued triangle, its threads striding over the bounding box.
__global__ void draw_big_triangles(RasterizeLaunch p) {
  const int queued = *p.big_triangles;
  for (int slot = blockIdx.x; slot < queued; slot += gridDim.x) {
    const int64_t id = p.big_triangles[1 + slot];
    const int image = static_cast<int>(id / p.num_faces), face = static_cast<int>(id % p.num_faces);
    Triangle t;
    if (!load_triangle(p, image, face, t)) continue;  // cannot happen: pass 1a queued it after the same set-up
    const int64_t box_w = t.x1 - t.x0 + 1, box_h = t.y1 - t.y0 + 1;
    for (int64_t i = threadIdx.x; i < box_w * box_h; i += blockDim.x) {
      draw_pixel(p, t, image, face, t.x0 + static_cast<int>(i % box_w), t.y0 + static_cast<int>(i / box_w));
    }
  }
}

// Pass 2: per pixel, the winning face's depth (from the key) and perspective-correct barycentrics (recomputed with
// the same set-up as pass 1, so they belong to exactly the depth that won).
__global__ void resolve_pixels(RasterizeLaunch p) {
  const int64_t plane = static_cast<int64_t>(p.height) * p.width;
  const int64_t total = p.batch * plane;
  for (int64_t pixel = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; pixel < total;
       pixel += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const unsigned long long key = p.zbuffer[pixel];
    float bary[3] = {0.0f, 0.0f, 0.0f};
    int face = -1;
    float depth = 0.0f;
    if (key != kEmptyKey) {
      face = static_cast<int>(key & 0xffffffffull);
      depth = __uint_as_float(static_cast<unsigned int>(key >> 32));
      const int image = static_cast<int>(pixel / plane);
      const int py = static_cast<int>((pixel % plane) / p.width), px = static_cast<int>(pixel % p.width);
      Triangle t;
      load_triangle(p, image, face, t);  // succeeded in pass 1 with the same inputs
      const int64_t P = raster::pixel_centre(px), Q = raster::pixel_centre(py);
      const int64_t e[3] = {raster::edge(t, 0, P, Q), raster::edge(t, 1, P, Q), raster::edge(t, 2, P, Q)};
      raster::barycentric_at(t, e, bary);
    }
    p.face_index[pixel] = face;
    p.depth[pixel] = depth;
    p.barycentric[3 * pixel + 0] = bary[0];
    p.barycentric[3 * pixel + 1] = bary[1];
    p.barycentric[3 * pixel + 2] = bary[2];
  }
}

unsigned grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < (1 << 20) ? (blocks > 0 ? blocks : 1) : (1 << 20));
}

}  // namespace

cudaError_t rasterize(const RasterizeLaunch& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.height <= 0 || p.width <= 0) return cudaSuccess;
  if (p.vertices == nullptr && p.num_vertices > 0) return cudaErrorInvalidValue;
  if ((p.faces == nullptr && p.num_faces > 0) || p.zbuffer == nullptr || p.big_triangles == nullptr ||
      p.face_index == nullptr || p.barycentric == nullptr || p.depth == nullptr || p.num_faces < 0 ||
      p.height >= raster::kMaxImageSide || p.width >= raster::kMaxImageSide ||
      static_cast<int64_t>(p.batch) * p.num_faces > 0x7fffffff) {
    return cudaErrorInvalidValue;
  }
  const int64_t pixels = static_cast<int64_t>(p.batch) * p.height * p.width;
  cudaError_t status = cudaMemsetAsync(p.zbuffer, 0xff, pixels * sizeof(unsigned long long), stream);
  if (status != cudaSuccess) return status;
  status = cudaMemsetAsync(p.big_triangles, 0, sizeof(int32_t), stream);
  if (status != cudaSuccess) return status;
  if (p.num_faces > 0) {
    draw_small_triangles<<<grid_for(static_cast<int64_t>(p.batch) * p.num_faces), kThreads, 0, stream>>>(p);
    // A fixed grid that loops over the queue: its length is only known on the device.
    draw_big_triangles<<<1024, kThreads, 0, stream>>>(p);
  }
  resolve_pixels<<<grid_for(pixels), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace facetex::kernels::cuda
