// The torch side of the CUDA rasteriser (CUDA-LibTorch builds only): contiguous inputs, int32 faces, the
// workspaces and the outputs as tensors on the input's device, the launch on ATen's current stream. No autograd
// Function: the rasteriser's outputs carry no gradient (geometry is not differentiated in training).
#ifdef FACETEX_HAVE_TORCH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda_launch_support.h"
#include "kernels/rasterize.h"

namespace facetex::kernels::detail {

// Declared in kernels/rasterize.cpp, which validates the arguments (shapes, dtypes, index range, size limits).
RasterOutput rasterize_cuda(const at::Tensor& screen_vertices, const at::Tensor& faces, int64_t height, int64_t width) {
  const c10::cuda::CUDAGuard device_guard(screen_vertices.device());
  const at::Tensor vertices = screen_vertices.contiguous();
  const at::Tensor corners = faces.to(at::kInt).contiguous();
  const int64_t batch = vertices.size(0), num_faces = corners.size(0);
  const at::TensorOptions on_device = vertices.options();

  RasterOutput result;
  result.face_index = at::empty({batch, height, width}, on_device.dtype(at::kInt));
  result.barycentric = at::empty({batch, height, width, 3}, on_device.dtype(at::kFloat));
  result.depth = at::empty({batch, height, width}, on_device.dtype(at::kFloat));
  // Workspaces: the 64-bit depth|face keys, and the queue of large triangles (a counter, then (image, face) ids).
  at::Tensor zbuffer = at::empty({batch, height, width}, on_device.dtype(at::kLong));
  at::Tensor queue = at::empty({batch * num_faces + 1}, on_device.dtype(at::kInt));

  cuda::RasterizeLaunch p;
  p.vertices = vertices.data_ptr<float>();
  p.faces = num_faces > 0 ? corners.data_ptr<int32_t>() : nullptr;
  p.batch = static_cast<int>(batch);
  p.num_vertices = static_cast<int>(vertices.size(1));
  p.num_faces = static_cast<int>(num_faces);
  p.height = static_cast<int>(height);
  p.width = static_cast<int>(width);
  p.zbuffer = reinterpret_cast<unsigned long long*>(zbuffer.data_ptr<int64_t>());
  p.big_triangles = queue.data_ptr<int32_t>();
  p.face_index = result.face_index.data_ptr<int32_t>();
  p.barycentric = result.barycentric.data_ptr<float>();
  p.depth = result.depth.data_ptr<float>();
  check_launch(cuda::rasterize(p, current_stream(vertices)), "rasterize");
  return result;
}

}  // namespace facetex::kernels::detail

#endif  // FACETEX_HAVE_TORCH_CUDA
