# train/ tests (included from tests/CMakeLists.txt; paths relative to tests/). One source per line.
facetex_test(test_train TORCH WHOLE
  SOURCES
    train/test_augment_pipe.cpp
    train/test_loss_and_optimizer.cpp
    train/test_training_loop.cpp
    train/test_train_options.cpp
    train/test_generated_background.cpp
    train/test_profiling.cpp
    train/test_lpips_term.cpp
    train/test_shards_face_model.cpp
  DEPS facetex_train facetex_test_parity facetex_test_support LABELS train)
