# Every external dependency, found once. docs/dependencies.md explains why each is here.
find_package(Threads REQUIRED)

# LibTorch: Debian's libtorch-dev (CPU, 1.13) or any CUDA LibTorch 2.x (CMAKE_PREFIX_PATH=torch.utils.cmake_prefix_path).
find_package(Torch REQUIRED)
# LibTorch 2.12 and later refuse to compile below C++20 (#error in ATen/ATen.h); the project itself is C++17 and
# Debian's 1.13 stays there. Only the language level changes, so every target still shares one precompiled header.
if(DEFINED Torch_VERSION AND Torch_VERSION VERSION_GREATER_EQUAL 2.12)
  set(CMAKE_CXX_STANDARD 20)
endif()
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda OR TARGET c10_cuda)
  set(FACETEX_TORCH_CUDA ON)
else()
  set(FACETEX_TORCH_CUDA OFF)
endif()
if(FACETEX_TORCH_CUDA AND NOT FACETEX_CUDA)
  message(FATAL_ERROR "LibTorch has CUDA but FACETEX_CUDA is off: put nvcc on PATH or set CMAKE_CUDA_COMPILER")
endif()

find_package(MPI REQUIRED COMPONENTS C)

# The rest comes from Debian's -dev packages, or from a prefix of static archives on machines without them.
set(FACETEX_STATIC_DEPS "" CACHE PATH "prefix from scripts/gpu_check/build_deps.sh (instead of Debian packages)")
if(FACETEX_STATIC_DEPS)
  include(${CMAKE_CURRENT_LIST_DIR}/FacetexStaticDeps.cmake)
else()
  find_package(PkgConfig REQUIRED)
  find_package(HDF5 REQUIRED COMPONENTS C)
  find_package(CLI11 REQUIRED)
  find_package(nlohmann_json 3.9 REQUIRED)
  find_package(fmt REQUIRED)
  find_package(spdlog REQUIRED)
  find_package(ZLIB REQUIRED)
  pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
  pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)

  # OpenCV: only imgcodecs + imgproc (+ core). Debian's -dev packages for single modules ship no CMake config.
  find_path(OpenCV_INCLUDE_DIR opencv2/imgcodecs.hpp PATH_SUFFIXES opencv4 REQUIRED)
  foreach(_m core imgproc imgcodecs)
    find_library(OpenCV_${_m}_LIBRARY opencv_${_m} REQUIRED)
  endforeach()
  add_library(facetex_opencv INTERFACE)
  target_include_directories(facetex_opencv SYSTEM INTERFACE ${OpenCV_INCLUDE_DIR})
  target_link_libraries(facetex_opencv INTERFACE ${OpenCV_imgcodecs_LIBRARY} ${OpenCV_imgproc_LIBRARY} ${OpenCV_core_LIBRARY})

  # libdeflate: PCLMUL-accelerated CRC-32 (same polynomial as zlib) and a faster inflate. zlib is the fallback.
  pkg_check_modules(LIBDEFLATE IMPORTED_TARGET libdeflate)
  set(FACETEX_LIBDEFLATE ${LIBDEFLATE_FOUND})
endif()

if(FACETEX_PROMETHEUS STREQUAL "AUTO")
  find_package(prometheus-cpp CONFIG QUIET)
  set(FACETEX_PROMETHEUS ${prometheus-cpp_FOUND})
elseif(FACETEX_PROMETHEUS)
  find_package(prometheus-cpp CONFIG REQUIRED)
endif()

if(FACETEX_NCCL STREQUAL "AUTO" OR FACETEX_NCCL)
  set(_nccl_requested ${FACETEX_NCCL})
  set(FACETEX_NCCL OFF)
  if(FACETEX_CUDA)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} $ENV{NCCL_HOME}/include)
    # libnccl.so.2: pip's nvidia-nccl wheels (next to a pip LibTorch) ship no unversioned libnccl.so.
    find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${CUDAToolkit_LIBRARY_DIR} $ENV{NCCL_HOME}/lib)
    if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
      set(FACETEX_NCCL ON)
    endif()
  endif()
  if(NOT FACETEX_NCCL AND NOT _nccl_requested STREQUAL "AUTO")
    message(FATAL_ERROR "FACETEX_NCCL=ON, but CUDA or nccl.h/libnccl was not found (set NCCL_HOME)")
  endif()
endif()

if(FACETEX_BUILD_TESTS AND NOT FACETEX_STATIC_DEPS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
