# train/ tests (included from tests/CMakeLists.txt; paths relative to tests/). One source per line.
facetex_test(test_train TORCH WHOLE
  SOURCES
    train/test_augment_pipe.cpp
    train/test_loss_and_optimizer.cpp
  DEPS facetex_train facetex_test_parity LABELS train)
