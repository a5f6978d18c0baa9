# models/face3d: one line per source file (several areas append here; never remove another area's lines).
list(APPEND FACETEX_MODELS_SOURCES face3d/canonical_mesh.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/photo_fit.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/uv_unwrap.cpp)
list(APPEND FACETEX_MODELS_DEPS facetex_opencv)  # uv_unwrap.cpp draws overlays with OpenCV imgproc
list(APPEND FACETEX_MODELS_SOURCES face3d/renderer.cpp)
# Morphable model IO, geometry, camera, POS alignment, OBJ export. matio reads/writes the Deep3DFaceRecon/BFM
# MATLAB v5 .mat face models; GLOBAL so that other directories (tests, apps) can name PkgConfig::MATIO too.
if(NOT TARGET PkgConfig::MATIO)
  pkg_check_modules(MATIO REQUIRED IMPORTED_TARGET GLOBAL matio)
endif()
list(APPEND FACETEX_MODELS_SOURCES face3d/morphable_model.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/geometry.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/camera.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/pos_align.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/obj_export.cpp)
list(APPEND FACETEX_MODELS_DEPS PkgConfig::MATIO)
list(APPEND FACETEX_MODELS_DEPS facetex_opencv)  # obj_export.cpp encodes the texture PNG
# Landmark-driven geometry for `data annotate`: POS crop + LM fit through the renderer's camera; the canonical mesh
# as a MorphableModel.
list(APPEND FACETEX_MODELS_SOURCES face3d/landmark_fit.cpp)
list(APPEND FACETEX_MODELS_SOURCES face3d/canonical_model.cpp)
