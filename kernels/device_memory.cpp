#include "kernels/device_memory.h"

#ifdef FACETEX_HAVE_TORCH_CUDA
#include "kernels/cuda/launchers.h"
#endif

namespace facetex::kernels {

int64_t gpu_memory_used_bytes(const c10::Device& device) {
#ifdef FACETEX_HAVE_TORCH_CUDA
  if (device.is_cuda()) {
    int64_t used = 0, total = 0;
    if (cuda::device_memory_used(device.has_index() ? device.index() : 0, &used, &total) == cudaSuccess) return used;
  }
#endif
  (void)device;
  return 0;
}

}  // namespace facetex::kernels
