# Target helpers shared by every folder.

set(FACETEX_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(FACETEX_WERROR)
  list(APPEND FACETEX_WARNINGS -Werror)
endif()

# All compile definitions are global so that every torch target can reuse one precompiled header
# (REUSE_FROM requires identical flags and definitions).
add_compile_definitions(
  $<$<BOOL:${FACETEX_CUDA}>:FACETEX_HAVE_CUDA=1>
  $<$<BOOL:${FACETEX_TORCH_CUDA}>:FACETEX_HAVE_TORCH_CUDA=1>
  $<$<BOOL:${FACETEX_NCCL}>:FACETEX_HAVE_NCCL=1>
  $<$<BOOL:${FACETEX_PROMETHEUS}>:FACETEX_HAVE_PROMETHEUS=1>
  $<$<BOOL:${FACETEX_LIBDEFLATE}>:FACETEX_HAVE_LIBDEFLATE=1>)

# One precompiled header for all torch translation units (a torch TU costs 20-40 s on 2 cores without it).
add_library(facetex_torch_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/torch_pch.cpp)
target_link_libraries(facetex_torch_pch PUBLIC torch)
target_include_directories(facetex_torch_pch PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(facetex_torch_pch PRIVATE ${FACETEX_WARNINGS})
target_precompile_headers(facetex_torch_pch PRIVATE ${PROJECT_SOURCE_DIR}/cmake/torch_pch.h)

# facetex_library(<name> SOURCES ... [DEPS ...] [TORCH])
#   A static library facetex_<name> with the repository root as include root (#include "data/loader.h").
#   TORCH links LibTorch and reuses the shared precompiled header.
function(facetex_library name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(facetex_${name} STATIC ${ARG_SOURCES})
  target_include_directories(facetex_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(facetex_${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${FACETEX_WARNINGS}>)
  target_link_libraries(facetex_${name} PUBLIC ${ARG_DEPS})
  if(ARG_TORCH)
    target_link_libraries(facetex_${name} PUBLIC torch)
    target_precompile_headers(facetex_${name} REUSE_FROM facetex_torch_pch)
  endif()
endfunction()

# facetex_test(<name> SOURCES ... DEPS ... [TORCH] [WHOLE] [LABELS ...] [ENV ...])
#   A GoogleTest binary. Torch-free binaries register one ctest entry per test (gtest_discover_tests);
#   WHOLE registers the binary as one entry (use for torch binaries: every process pays ~1.5 s loading libtorch).
function(facetex_test name)
  cmake_parse_arguments(ARG "TORCH;WHOLE" "" "SOURCES;DEPS;LABELS;ENV" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${FACETEX_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  if(ARG_TORCH)
    target_link_libraries(${name} PRIVATE torch)
    target_precompile_headers(${name} REUSE_FROM facetex_torch_pch)
  endif()
  set(_env "FACETEX_SOURCE_DIR=${PROJECT_SOURCE_DIR}" ${ARG_ENV})
  if(ARG_WHOLE)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_env}" LABELS "${ARG_LABELS}")
  else()
    gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST PROPERTIES ENVIRONMENT "${_env}" LABELS "${ARG_LABELS}")
  endif()
endfunction()
