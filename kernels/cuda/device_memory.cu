#include "kernels/cuda/launchers.h"

namespace facetex::kernels::cuda {

cudaError_t device_memory_used(int device, int64_t* used_bytes, int64_t* total_bytes) {
  int previous = 0;
  cudaError_t rc = cudaGetDevice(&previous);
  if (rc != cudaSuccess) return rc;
  if (previous != device && (rc = cudaSetDevice(device)) != cudaSuccess) return rc;
  size_t free = 0, total = 0;
  rc = cudaMemGetInfo(&free, &total);
  if (previous != device) cudaSetDevice(previous);
  if (rc != cudaSuccess) return rc;
  *used_bytes = static_cast<int64_t>(total - free);
  *total_bytes = static_cast<int64_t>(total);
  return cudaSuccess;
}

}  // namespace facetex::kernels::cuda
