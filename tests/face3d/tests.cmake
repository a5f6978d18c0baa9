# face3d: morphable model IO, geometry and camera, POS alignment and OBJ export (the rasteriser/renderer and the
# photo front end have their own lists).
facetex_test(test_face3d TORCH WHOLE
  SOURCES face3d/test_morphable_model.cpp face3d/test_geometry.cpp face3d/test_pos_align.cpp
          face3d/test_obj_export.cpp
  DEPS facetex_models facetex_test_support PkgConfig::MATIO facetex_opencv
  LABELS face3d)
