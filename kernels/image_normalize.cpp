#include "kernels/image_normalize.h"

#include <ATen/ATen.h>

#include "core/error.h"

#ifdef FACETEX_HAVE_TORCH_CUDA
#include "kernels/cuda/launchers.h"
#include <ATen/cuda/CUDAContext.h>
#endif

namespace facetex::kernels {

bool cuda_kernels_available() {
#ifdef FACETEX_HAVE_TORCH_CUDA
  return at::hasCUDA();
#else
  return false;
#endif
}

at::Tensor normalize_images(const at::Tensor& images) {
  FACETEX_CHECK_RUNTIME(images.scalar_type() == at::kByte, "normalize_images expects uint8, got {}",
                        std::string(c10::toString(images.scalar_type())));
#ifdef FACETEX_HAVE_TORCH_CUDA
  if (images.is_cuda()) {
    at::Tensor in = images.contiguous();
    at::Tensor out = at::empty(in.sizes(), in.options().dtype(at::kFloat));
    cudaError_t err = cuda::normalize_u8_to_f32(in.data_ptr<uint8_t>(), out.data_ptr<float>(), in.numel(),
                                                at::cuda::getCurrentCUDAStream().stream());
    FACETEX_CHECK_RUNTIME(err == cudaSuccess, "normalize_images CUDA kernel failed: {}", cudaGetErrorString(err));
    return out;
  }
#endif
  return images.to(at::kFloat).div_(127.5).sub_(1.0);
}

}  // namespace facetex::kernels
