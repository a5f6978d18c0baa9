# The dependencies as static archives from one prefix (scripts/gpu_check/build_deps.sh builds it), for machines
# without Debian's -dev packages — the GPU machine: -DFACETEX_STATIC_DEPS=/path/to/prefix. Defines the same target
# names that FacetexDependencies.cmake finds on Debian, so no other CMake file knows which way they came.
# Torch, MPI, CUDA and NCCL are still the machine's own.
set(_p ${FACETEX_STATIC_DEPS})
if(NOT EXISTS ${_p}/.built-opencv OR NOT EXISTS ${_p}/.built-dlib OR NOT EXISTS ${_p}/.built-libzip)
  message(FATAL_ERROR "FACETEX_STATIC_DEPS=${_p} is not a complete prefix: run scripts/gpu_check/build_deps.sh")
endif()

# Header-only modes, global so that every torch target keeps sharing one precompiled header.
add_compile_definitions(FMT_HEADER_ONLY=1 SPDLOG_HEADER_ONLY=1 SPDLOG_FMT_EXTERNAL=1 TOML_HEADER_ONLY=1)

# facetex_static_dep(<target> <archive or ""> [DEPS ...] [INCLUDE dir...])
function(facetex_static_dep target archive)
  cmake_parse_arguments(ARG "" "" "DEPS;INCLUDE" ${ARGN})
  if(archive)
    if(NOT EXISTS ${_p}/${archive})
      message(FATAL_ERROR "FACETEX_STATIC_DEPS: ${_p}/${archive} is missing")
    endif()
    add_library(${target} STATIC IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION ${_p}/${archive})
  else()
    add_library(${target} INTERFACE IMPORTED GLOBAL)
  endif()
  set(_inc ${_p}/include ${ARG_INCLUDE})
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_inc}"
                                             INTERFACE_LINK_LIBRARIES "${ARG_DEPS}")
endfunction()

facetex_static_dep(ZLIB::ZLIB lib/libz.a)
facetex_static_dep(facetex_static_aec lib/libaec.a)
facetex_static_dep(facetex_static_sz lib/libsz.a DEPS facetex_static_aec)
# Debian's HDF5 is the thread-safe build (pthread keys and a global lock).
facetex_static_dep(HDF5::HDF5 lib/libhdf5_serial.a DEPS facetex_static_sz ZLIB::ZLIB Threads::Threads m ${CMAKE_DL_LIBS})
facetex_static_dep(PkgConfig::MATIO lib/libmatio.a DEPS HDF5::HDF5 ZLIB::ZLIB)
facetex_static_dep(PkgConfig::LIBZIP lib/libzip.a DEPS ZLIB::ZLIB)
facetex_static_dep(PkgConfig::LIBDEFLATE lib/libdeflate.a)
set(FACETEX_LIBDEFLATE ON)
facetex_static_dep(PkgConfig::DLIB lib/libdlib.a DEPS Threads::Threads)
facetex_static_dep(fmt::fmt "")
facetex_static_dep(spdlog::spdlog "" DEPS fmt::fmt)
facetex_static_dep(nlohmann_json::nlohmann_json "")
facetex_static_dep(CLI11::CLI11 "")
facetex_static_dep(PkgConfig::TOMLPP "")

# OpenCV: imgcodecs -> imgproc -> core, then the codecs' own libraries.
facetex_static_dep(facetex_static_png lib/libpng16.a DEPS ZLIB::ZLIB m)
facetex_static_dep(facetex_static_jpeg lib/libjpeg.a)
facetex_static_dep(facetex_static_cv_core lib/libopencv_core.a DEPS ZLIB::ZLIB Threads::Threads ${CMAKE_DL_LIBS})
facetex_static_dep(facetex_static_cv_imgproc lib/libopencv_imgproc.a DEPS facetex_static_cv_core)
facetex_static_dep(facetex_static_cv_imgcodecs lib/libopencv_imgcodecs.a
                   DEPS facetex_static_cv_imgproc facetex_static_png facetex_static_jpeg)
add_library(facetex_opencv INTERFACE)
target_include_directories(facetex_opencv SYSTEM INTERFACE ${_p}/include/opencv4)
target_link_libraries(facetex_opencv INTERFACE facetex_static_cv_imgcodecs)

if(FACETEX_BUILD_TESTS)
  # GoogleTest from its sources (built with the project's compiler and flags).
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  add_subdirectory(${_p}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)
  if(NOT TARGET GTest::gtest)  # GoogleTest >= 1.11 defines these aliases itself
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
  include(GoogleTest)
endif()
