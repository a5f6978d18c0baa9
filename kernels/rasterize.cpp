// Rasterisation: argument checks, the multi-threaded CPU rasteriser and the choice between it and the CUDA kernel.
// Coverage, depth and barycentrics come from kernels/cuda/raster_math.h, shared with the CUDA kernel, so the two
// implementations agree exactly; this file only organises the work for CPU cores.
//
// CPU scheme, per image: (1) set up every triangle in parallel; (2) bin the drawable ones into bands of
// kBandRows rows by their bounding boxes, in face order; (3) rasterise the bands in parallel, each band owned by one
// thread, so the z-buffer needs no atomics and stays in cache. Within a band faces arrive in increasing index and a
// pixel is only taken by a strictly nearer depth, so ties go to the smaller face index — the CUDA kernel's order.
#include "kernels/rasterize.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/raster_math.h"
#include "kernels/impl_choice.h"
#include "kernels/shape_text.h"

namespace facetex::kernels {

#ifdef FACETEX_HAVE_TORCH_CUDA
namespace detail {
// kernels/rasterize_cuda.cpp: valid CUDA-resident inputs; faces already checked against the vertex count.
RasterOutput rasterize_cuda(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width);
}  // namespace detail
#endif

namespace {

using detail::shape_text;
using raster::Triangle;

// 16 rows x 1024 columns of outputs (~450 KiB with barycentrics) stay in a core's L2; at 1024^2 that is 64 bands
// per image, plenty to balance two to a few dozen threads.
constexpr int64_t kBandRows = 16;

void check_inputs(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width) {
  FACETEX_CHECK_RUNTIME(screen_vertices.defined() && screen_vertices.dim() == 3 && screen_vertices.size(2) == 3,
                        "rasterize: screen_vertices must be [B, V, 3], got {}", shape_text(screen_vertices));
  FACETEX_CHECK_RUNTIME(screen_vertices.scalar_type() == at::kFloat,
                        "rasterize: screen_vertices must be float32, got {}",
                        c10::toString(screen_vertices.scalar_type()));
  FACETEX_CHECK_RUNTIME(faces.defined() && faces.dim() == 2 && faces.size(1) == 3,
                        "rasterize: faces must be [F, 3], got {}", shape_text(faces));
  FACETEX_CHECK_RUNTIME(faces.scalar_type() == at::kInt || faces.scalar_type() == at::kLong,
                        "rasterize: faces must be int32 or int64, got {}", c10::toString(faces.scalar_type()));
  FACETEX_CHECK_RUNTIME(screen_vertices.device() == faces.device(),
                        "rasterize: screen_vertices {} are on {} but faces {} are on {}", shape_text(screen_vertices),
                        screen_vertices.device().str(), shape_text(faces), faces.device().str());
  FACETEX_CHECK_RUNTIME(height >= 1 && width >= 1 && height < raster::kMaxImageSide && width < raster::kMaxImageSide,
                        "rasterize: image size {}x{} (HxW) must be at least 1x1 and below {} per side", height, width,
                        raster::kMaxImageSide);
  const int64_t batch = screen_vertices.size(0), num_faces = faces.size(0);
  // Face indices are int32 in the output and in the CUDA z-buffer key; the CUDA queue indexes (image, face) pairs.
  FACETEX_CHECK_RUNTIME(num_faces <= std::numeric_limits<int32_t>::max() &&
                            screen_vertices.size(1) <= std::numeric_limits<int32_t>::max() &&
                            batch * num_faces <= std::numeric_limits<int32_t>::max(),
                        "rasterize: {} faces over {} vertices in a batch of {} exceed the int32 indexing", num_faces,
                        screen_vertices.size(1), batch);
  if (num_faces > 0) {
    // The index range is read once per faces tensor — the same live tensor (a weak reference, so a new tensor at a
    // reused address is never mistaken for it), not modified since (its version counter): a renderer passes the
    // same faces every call, and on a GPU reading min/max is a host sync.
    struct Checked {
      c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> tensor{
          c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
      int64_t version = -1, lowest = 0, highest = 0;
    };
    thread_local Checked last;
    if (last.tensor.lock().get() != faces.unsafeGetTensorImpl() || last.version != faces._version()) {
      const at::Tensor range = at::stack({faces.min(), faces.max()}).cpu();
      last.tensor = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>(faces.getIntrusivePtr());
      last.version = faces._version();
      last.lowest = range[0].item<int64_t>();
      last.highest = range[1].item<int64_t>();
    }
    const int64_t lowest = last.lowest, highest = last.highest;
    FACETEX_CHECK_RUNTIME(lowest >= 0 && highest < screen_vertices.size(1),
                          "rasterize: faces {} index vertices {}..{} but screen_vertices {} has {} vertices",
                          shape_text(faces), lowest, highest, shape_text(screen_vertices), screen_vertices.size(1));
  }
}

struct Outputs {
  int32_t* face;
  float* bary;
  float* depth;
};

// Rasterises rows [row0, row1) of one image from the triangles listed for that band (increasing face index).
void draw_band(const Triangle* triangles, const int32_t* faces_in_band, int64_t count, int64_t row0, int64_t row1,
               int64_t width, const Outputs& out) {
  for (int64_t k = 0; k < count; ++k) {
    const int32_t face = faces_in_band[k];
    const Triangle& t = triangles[face];
    const int64_t y_begin = std::max<int64_t>(t.y0, row0), y_end = std::min<int64_t>(t.y1 + 1, row1);
    // Edge functions are linear with integer coefficients: stepping one pixel to the right adds exactly a_i * 256.
    const int64_t step[3] = {t.a[0] * raster::kSubpixelScale, t.a[1] * raster::kSubpixelScale,
                             t.a[2] * raster::kSubpixelScale};
    const int64_t P0 = raster::pixel_centre(t.x0);
    for (int64_t py = y_begin; py < y_end; ++py) {
      const int64_t Q = raster::pixel_centre(py);
      int64_t e[3] = {raster::edge(t, 0, P0, Q), raster::edge(t, 1, P0, Q), raster::edge(t, 2, P0, Q)};
      const int64_t row = py * width;
      for (int64_t px = t.x0; px <= t.x1; ++px, e[0] += step[0], e[1] += step[1], e[2] += step[2]) {
        if (!raster::covers(t, e)) continue;
        const float d = raster::depth_at(t, e);
        const int64_t pixel = row + px;
        // Empty pixels take any depth; covered ones only a strictly nearer one, so ties keep the smaller face index.
        if (out.face[pixel] >= 0 && !(d < out.depth[pixel])) continue;
        out.depth[pixel] = d;
        out.face[pixel] = face;
        raster::barycentric_at(t, e, out.bary + 3 * pixel);
      }
    }
  }
}

// Per face, the first and last band its bounding box touches; first > last for faces that are not drawn. Kept
// apart from the (large) Triangle records so that binning streams through 8 bytes per face.
struct BandRange {
  int32_t first, last;
};

void rasterize_image(const float* vertices, const int64_t* faces, int64_t num_faces, int64_t height, int64_t width,
                     const Outputs& out, Triangle* triangles, std::vector<BandRange>& bands_of) {
  // (1) Set-up, in parallel over faces.
  at::parallel_for(0, num_faces, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t f = begin; f < end; ++f) {
      const int64_t* corner = faces + 3 * f;
      Triangle& t = triangles[f];
      const bool drawable =
          raster::setup_triangle(vertices + 3 * corner[0], vertices + 3 * corner[1], vertices + 3 * corner[2],
                                 static_cast<int>(height), static_cast<int>(width), t);
      bands_of[f] = drawable ? BandRange{static_cast<int32_t>(t.y0 / kBandRows), static_cast<int32_t>(t.y1 / kBandRows)}
                             : BandRange{1, 0};
    }
  });

  // (2) Bin into bands (a counting sort keeps face order within each band).
  const int64_t num_bands = (height + kBandRows - 1) / kBandRows;
  std::vector<int64_t> band_start(num_bands + 1, 0);
  for (int64_t f = 0; f < num_faces; ++f) {
    for (int32_t band = bands_of[f].first; band <= bands_of[f].last; ++band) ++band_start[band + 1];
  }
  for (int64_t band = 0; band < num_bands; ++band) band_start[band + 1] += band_start[band];
  std::vector<int32_t> band_faces(band_start[num_bands]);
  std::vector<int64_t> fill(band_start.begin(), band_start.end() - 1);
  for (int64_t f = 0; f < num_faces; ++f) {
    for (int32_t band = bands_of[f].first; band <= bands_of[f].last; ++band)
      band_faces[fill[band]++] = static_cast<int32_t>(f);
  }

  // (3) Bands in parallel. The face tends to cover the middle of the image, so bands differ a lot in cost: threads
  // pull bands from a shared counter rather than taking fixed contiguous ranges.
  std::atomic<int64_t> next_band{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), num_bands);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t band = next_band++; band < num_bands; band = next_band++) {
      draw_band(triangles, band_faces.data() + band_start[band], band_start[band + 1] - band_start[band],
                band * kBandRows, std::min(height, (band + 1) * kBandRows), width, out);
    }
  });
}

RasterOutput rasterize_cpu(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width) {
  const at::Tensor vertices = screen_vertices.contiguous();
  const at::Tensor corners = faces.to(at::kLong).contiguous();
  const int64_t batch = vertices.size(0), num_vertices = vertices.size(1), num_faces = corners.size(0);
  RasterOutput result;
  // The empty-pixel values, written by ATen's fill, which gives each thread one contiguous slice of the memory.
  // First-touching the outputs band by band from the raster threads did not scale on a 16-core Linux host
  // (17.9 -> 22.9 ms per 1024^2 image from 1 to 16 threads), presumably because neighbouring bands share
  // transparent huge pages whose zero-filling then serialises the threads.
  result.face_index = at::full({batch, height, width}, -1, at::TensorOptions().dtype(at::kInt));
  result.barycentric = at::zeros({batch, height, width, 3}, at::TensorOptions().dtype(at::kFloat));
  result.depth = at::zeros({batch, height, width}, at::TensorOptions().dtype(at::kFloat));

  // Reused by every image; default-initialised (set-up writes each record before it is read), so the ~144 bytes
  // per face are not zeroed first.
  std::unique_ptr<Triangle[]> triangles(new Triangle[num_faces]);
  std::vector<BandRange> bands_of(num_faces);
  const int64_t plane = height * width;
  for (int64_t b = 0; b < batch; ++b) {
    const Outputs out{result.face_index.data_ptr<int32_t>() + b * plane,
                      result.barycentric.data_ptr<float>() + 3 * b * plane, result.depth.data_ptr<float>() + b * plane};
    rasterize_image(vertices.data_ptr<float>() + b * num_vertices * 3, corners.data_ptr<int64_t>(), num_faces, height,
                    width, out, triangles.get(), bands_of);
  }
  return result;
}

}  // namespace

RasterOutput rasterize(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width,
                       Impl impl) {
  check_inputs(screen_vertices, faces, height, width);
  if (detail::use_cuda_kernel(impl, screen_vertices, "rasterize")) {
#ifdef FACETEX_HAVE_TORCH_CUDA
    return detail::rasterize_cuda(screen_vertices, faces, height, width);
#endif
  }
  // The reference runs on the CPU; CUDA inputs (Impl::kReference, e.g. for A/B checks) round-trip through it.
  if (screen_vertices.device().is_cpu()) return rasterize_cpu(screen_vertices, faces, height, width);
  RasterOutput cpu = rasterize_cpu(screen_vertices.cpu(), faces.cpu(), height, width);
  const at::Device device = screen_vertices.device();
  return {cpu.face_index.to(device), cpu.barycentric.to(device), cpu.depth.to(device)};
}

}  // namespace facetex::kernels
