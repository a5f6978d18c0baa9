# Build options. "AUTO" means: on when the dependency is found, off (with a status line) otherwise.
set(FACETEX_CUDA "AUTO" CACHE STRING "CUDA kernels: ON, OFF or AUTO (on when nvcc is found)")
set(FACETEX_NCCL "AUTO" CACHE STRING "NCCL communicator: ON, OFF or AUTO (on with CUDA when nccl.h is found)")
set(FACETEX_PROMETHEUS "AUTO" CACHE STRING "prometheus-cpp exporter: ON, OFF or AUTO")
option(FACETEX_BUILD_TESTS "Build the GoogleTest suites" ON)
option(FACETEX_BUILD_BENCH "Build the benchmarks in bench/" ON)
option(FACETEX_INTEGRATION "Register integration tests that need Slurm/Prometheus/Open MPI services" OFF)
option(FACETEX_WERROR "Treat warnings as errors" OFF)

# --- CUDA -------------------------------------------------------------------------------------------
# The .cu files are torch-free raw-pointer kernels, so they compile with nvcc alone (CI compile-checks them
# wherever nvcc exists). The torch adapters that launch them need a CUDA LibTorch: FACETEX_TORCH_CUDA.
if(FACETEX_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(FACETEX_CUDA ON)
  else()
    set(FACETEX_CUDA OFF)
  endif()
endif()
if(FACETEX_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # Must be set before enable_language(CUDA), or CMake picks nvcc's default (sm_75). nvcc 13 has no sm_70.
    set(CMAKE_CUDA_ARCHITECTURES "80;90")
  endif()
  # One CUDA runtime per process: LibTorch, NCCL and our kernels must share libcudart.so. CMake's default
  # (static) links cudart_static into every program that links a library with CUDA sources, beside the
  # libcudart.so that CUDA::cudart and LibTorch bring: two runtimes, each with its own module registry and
  # exit-time teardown, and LibTorch's calls may bind to either copy. Checked on the link lines: with this
  # setting -lcudart_static is gone.
  if(NOT DEFINED CMAKE_CUDA_RUNTIME_LIBRARY)
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  find_package(CUDAToolkit REQUIRED)
endif()
