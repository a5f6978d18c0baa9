# annotate: `facetex data annotate` — the landmark-driven geometry fit and the shard job: a synthetic-world closed
# loop, dlib's example photos (skipped without scripts/fetch_assets.sh's assets unless FACETEX_REQUIRE_ASSETS=1),
# bad inputs, resuming, and training on the output.
facetex_test(test_annotate TORCH WHOLE
  SOURCES annotate/test_annotate.cpp
  DEPS facetex_train facetex_test_support nlohmann_json::nlohmann_json
  LABELS annotate)
target_compile_definitions(test_annotate PRIVATE FACETEX_BINARY_PATH="$<TARGET_FILE:facetex>")
add_dependencies(test_annotate facetex)
