# metrics: dlib's face-recognition ResNet in LibTorch on dlib's example photos (skipped without the assets unless
# FACETEX_REQUIRE_ASSETS=1), the reconstruction metrics and FID/KID against hand-computed and numpy references
# (tests/metrics/make_metric_fixtures.py), and `facetex metrics` end to end.
facetex_test(test_metrics TORCH WHOLE
  SOURCES metrics/test_dlib_face_resnet.cpp metrics/test_metrics.cpp metrics/test_light_cnn.cpp
  DEPS facetex_train facetex_test_support
  LABELS metrics)
target_compile_definitions(test_metrics PRIVATE FACETEX_METRICS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
# `facetex metrics fid|kid|recon` end to end, one rank and `mpirun -np 2` (same numbers); skips (77) without the
# assets. Needs mpirun (Open MPI); not registered without it.
find_program(FACETEX_METRICS_MPIRUN NAMES mpirun)
if(FACETEX_METRICS_MPIRUN)
  add_test(NAME test_metrics_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/metrics/test_metrics_cli.sh $<TARGET_FILE:facetex>)
  set_tests_properties(test_metrics_cli PROPERTIES LABELS "metrics;mpi" SKIP_RETURN_CODE 77 TIMEOUT 600
                       ENVIRONMENT "FACETEX_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endif()
