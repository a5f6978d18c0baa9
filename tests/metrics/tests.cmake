# metrics: dlib's face-recognition ResNet in LibTorch on dlib's example photos (skipped without the assets unless
# FACETEX_REQUIRE_ASSETS=1), the reconstruction metrics and FID/KID against hand-computed and numpy references
# (tests/metrics/make_metric_fixtures.py), and `facetex metrics` end to end.
facetex_test(test_metrics TORCH WHOLE
  SOURCES metrics/test_dlib_face_resnet.cpp metrics/test_metrics.cpp
  DEPS facetex_train facetex_test_support
  LABELS metrics)
