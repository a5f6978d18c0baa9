// Triangle set-up, coverage test and perspective-correct interpolation shared by the CPU rasteriser
// (kernels/rasterize.cpp) and the CUDA one (kernels/cuda/rasterize.cu). One copy of the arithmetic, compiled for
// host and device, is what makes the two agree bit for bit (same face index, barycentrics and depth), which the
// CPU-vs-CUDA test checks exactly:
//   - vertices are snapped to 1/256 pixel and edge functions are evaluated in int64, so coverage (including the
//     top-left rule on shared edges) is exact: no pixel of a closed mesh is covered twice or missed;
//   - the floating-point part is divisions, products and sums in double whose every operation is IEEE
//     round-to-nearest on both sides: on the device through __d*_rn intrinsics (which nvcc never fuses into FMAs),
//     on the host because kernels/CMakeLists.txt compiles rasterize.cpp with -ffp-contract=off.
// Torch-free, like everything in kernels/cuda/.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FACETEX_RASTER_FN __host__ __device__ __forceinline__
#else
#define FACETEX_RASTER_FN inline
#endif

namespace facetex::kernels::raster {

// Sub-pixel precision of the snapped vertex positions (as in GPU hardware rasterisers: 8 bits).
constexpr int kSubpixelBits = 8;
constexpr int64_t kSubpixelScale = int64_t{1} << kSubpixelBits;
// |x|, |y| of every vertex and the image width/height must stay below 2^21 pixels: snapped coordinates are then
// below 2^29, edge-function coefficients below 2^30 and every edge-function value below 2^61, so int64 never
// overflows. Triangles with a vertex beyond this (only possible for vertices almost on the camera plane) are
// skipped, like triangles behind the camera.
constexpr float kMaxCoordinate = 2097152.0f;
constexpr int64_t kMaxImageSide = int64_t{1} << 21;

// A triangle ready to rasterise. E_i(P, Q) = a[i]*P + b[i]*Q + c[i] (P, Q a pixel centre in fixed point) is the
// edge function of the edge opposite vertex i, signed so that it is positive inside whatever the winding; it equals
// `area` at vertex i, so E_i / area is the screen-space barycentric of vertex i.
struct Triangle {
  int64_t a[3], b[3], c[3];
  int64_t area;        // twice the signed-normalised area in fixed point^2, > 0
  int64_t bias[3];     // top-left rule: covered iff E_i >= bias[i] for all i (bias 0 includes the edge, 1 excludes it)
  double inv_z[3];     // 1 / depth of each vertex
  int x0, x1, y0, y1;  // candidate pixels (inclusive, clipped to the image); empty when x0 > x1 or y0 > y1
};

namespace detail {

FACETEX_RASTER_FN double to_double(int64_t v) {
#ifdef __CUDA_ARCH__
  return __ll2double_rn(v);
#else
  return static_cast<double>(v);
#endif
}
FACETEX_RASTER_FN double mul(double x, double y) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(x, y);
#else
  return x * y;
#endif
}
FACETEX_RASTER_FN double add(double x, double y) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(x, y);
#else
  return x + y;
#endif
}
FACETEX_RASTER_FN double div(double x, double y) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(x, y);
#else
  return x / y;
#endif
}

// x * 256 rounded to the nearest integer, halves upwards: floor(x * 256 + 0.5). Exact in double for |x| < 2^21
// (x * 256 has at most 24 significant bits, so even a fused x * 256 + 0.5 rounds the same), and written with a
// truncating conversion plus a correction rather than floor()/rint(), which are library calls on baseline x86-64 and
// would dominate the CPU set-up.
FACETEX_RASTER_FN int64_t snap(float x) {
  const double shifted = static_cast<double>(x) * static_cast<double>(kSubpixelScale) + 0.5;
  const int64_t truncated = static_cast<int64_t>(shifted);  // towards zero
  return truncated > shifted ? truncated - 1 : truncated;
}

// floor(a / b) for b > 0 (C++ division truncates toward zero).
FACETEX_RASTER_FN int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

FACETEX_RASTER_FN int64_t min3(int64_t x, int64_t y, int64_t z) { return x < y ? (x < z ? x : z) : (y < z ? y : z); }
FACETEX_RASTER_FN int64_t max3(int64_t x, int64_t y, int64_t z) { return x > y ? (x > z ? x : z) : (y > z ? y : z); }

}  // namespace detail

// Fixed-point coordinate of the centre of pixel column/row `p` (centres sit at p + 0.5).
FACETEX_RASTER_FN int64_t pixel_centre(int64_t p) { return p * kSubpixelScale + kSubpixelScale / 2; }

// Set-up of the triangle with vertices v0, v1, v2 (each x, y, z: pixel column, pixel row, depth). False when the
// triangle is not drawn: a vertex at z <= 0 (behind the camera), a non-finite or out-of-range coordinate, zero area
// after snapping, or no pixel centre inside its bounding box within the image.
FACETEX_RASTER_FN bool setup_triangle(const float* v0, const float* v1, const float* v2, int height, int width,
                                      Triangle& t) {
  const float* v[3] = {v0, v1, v2};
  int64_t X[3], Y[3];
  for (int i = 0; i < 3; ++i) {
    // Written so that NaN fails every test (comparisons with NaN are false).
    if (!(v[i][2] > 0.0f && v[i][2] <= 3.402823466e38f)) return false;
    if (!(v[i][0] > -kMaxCoordinate && v[i][0] < kMaxCoordinate)) return false;
    if (!(v[i][1] > -kMaxCoordinate && v[i][1] < kMaxCoordinate)) return false;
    X[i] = detail::snap(v[i][0]);
    Y[i] = detail::snap(v[i][1]);
  }
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    const int64_t dx = X[k] - X[j], dy = Y[k] - Y[j];
    // E_i(p) = cross(v_k - v_j, p - v_j), expanded into a linear function of p.
    t.a[i] = -dy;
    t.b[i] = dx;
    t.c[i] = dy * X[j] - dx * Y[j];
  }
  int64_t area = t.a[0] * X[0] + t.b[0] * Y[0] + t.c[0];
  if (area == 0) return false;
  if (area < 0) {  // the other winding: flip every edge function so that the inside is positive
    area = -area;
    for (int i = 0; i < 3; ++i) {
      t.a[i] = -t.a[i];
      t.b[i] = -t.b[i];
      t.c[i] = -t.c[i];
    }
  }
  t.area = area;
  for (int i = 0; i < 3; ++i) {
    // With the inside positive, the edge runs along (dx, dy) = (b, -a) (x right, y down). A pixel centre exactly
    // on the edge belongs to the triangle when the edge is a "left" edge (dy < 0) or a "top" edge (dy == 0, dx > 0).
    // Reversing the edge (the neighbour across it) flips both signs, so exactly one of two triangles sharing an
    // edge takes the pixel.
    const bool top_left = t.a[i] > 0 || (t.a[i] == 0 && t.b[i] > 0);
    t.bias[i] = top_left ? 0 : 1;
    t.inv_z[i] = detail::div(1.0, static_cast<double>(v[i][2]));
  }
  // Pixels whose centre (p * 256 + 128) lies within [min, max] of the snapped coordinates, clipped to the image.
  const int64_t half = kSubpixelScale / 2;
  int64_t x0 = -detail::floor_div(-(detail::min3(X[0], X[1], X[2]) - half), kSubpixelScale);  // ceil
  int64_t x1 = detail::floor_div(detail::max3(X[0], X[1], X[2]) - half, kSubpixelScale);
  int64_t y0 = -detail::floor_div(-(detail::min3(Y[0], Y[1], Y[2]) - half), kSubpixelScale);
  int64_t y1 = detail::floor_div(detail::max3(Y[0], Y[1], Y[2]) - half, kSubpixelScale);
  x0 = x0 < 0 ? 0 : x0;
  y0 = y0 < 0 ? 0 : y0;
  x1 = x1 > width - 1 ? width - 1 : x1;
  y1 = y1 > height - 1 ? height - 1 : y1;
  if (x0 > x1 || y0 > y1) return false;
  t.x0 = static_cast<int>(x0);
  t.x1 = static_cast<int>(x1);
  t.y0 = static_cast<int>(y0);
  t.y1 = static_cast<int>(y1);
  return true;
}

// Edge function i at the fixed-point point (P, Q).
FACETEX_RASTER_FN int64_t edge(const Triangle& t, int i, int64_t P, int64_t Q) {
  return t.a[i] * P + t.b[i] * Q + t.c[i];
}

FACETEX_RASTER_FN bool covers(const Triangle& t, const int64_t e[3]) {
  return e[0] >= t.bias[0] && e[1] >= t.bias[1] && e[2] >= t.bias[2];
}

// Depth of the surface at a covered pixel with edge values e: 1 / sum(lambda_i / z_i) with lambda_i = e_i / area
// (the screen-space barycentrics), i.e. area / sum(e_i / z_i). Positive, since every e_i >= 0 and they sum to area.
FACETEX_RASTER_FN float depth_at(const Triangle& t, const int64_t e[3]) {
  const double s = detail::add(
      detail::add(detail::mul(detail::to_double(e[0]), t.inv_z[0]), detail::mul(detail::to_double(e[1]), t.inv_z[1])),
      detail::mul(detail::to_double(e[2]), t.inv_z[2]));
  return static_cast<float>(detail::div(detail::to_double(t.area), s));
}

// Perspective-correct barycentrics at a covered pixel: the screen-space ones divided by each vertex's depth, then
// renormalised to sum 1 (the area cancels, so the edge values are used directly).
FACETEX_RASTER_FN void barycentric_at(const Triangle& t, const int64_t e[3], float out[3]) {
  const double l0 = detail::mul(detail::to_double(e[0]), t.inv_z[0]);
  const double l1 = detail::mul(detail::to_double(e[1]), t.inv_z[1]);
  const double l2 = detail::mul(detail::to_double(e[2]), t.inv_z[2]);
  const double s = detail::add(detail::add(l0, l1), l2);
  out[0] = static_cast<float>(detail::div(l0, s));
  out[1] = static_cast<float>(detail::div(l1, s));
  out[2] = static_cast<float>(detail::div(l2, s));
}

}  // namespace facetex::kernels::raster
