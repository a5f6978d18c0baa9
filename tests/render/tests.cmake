# render: the rasteriser (kernels/rasterize) and the UV-texture renderer/compositor (models/face3d/renderer).
# test_render_cuda.cpp skips without a CUDA build and device; scripts/gpu_check runs it on the GPU machine.
facetex_test(test_render TORCH WHOLE
  SOURCES render/test_rasterize.cpp render/test_renderer.cpp render/test_render_cuda.cpp
  DEPS facetex_models
  LABELS render)
