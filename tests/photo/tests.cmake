# photo: the real-photo front end — canonical mesh reader, pose fit, UV unwrap (synthetic checks that need no
# assets), dlib detection + landmarks on the dlib example photos with ground truth, and `facetex face` end to end.
# Tests on real photos skip without scripts/fetch_assets.sh's assets, or fail under FACETEX_REQUIRE_ASSETS=1.
facetex_test(test_photo TORCH WHOLE
  SOURCES photo/test_photo_geometry.cpp photo/test_photo_real.cpp
  DEPS facetex_models facetex_data facetex_test_support nlohmann_json::nlohmann_json
  LABELS photo)
target_compile_definitions(test_photo PRIVATE FACETEX_BINARY_PATH="$<TARGET_FILE:facetex>")
add_dependencies(test_photo facetex)
