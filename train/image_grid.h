// PNG grids of images in [-1, 1] (reals, fakes, textures) for the run folder.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace facetex::train {

// images: [N, 3, H, W] float in [-1, 1] (clamped) or uint8; laid out in a near-square grid, written atomically.
void write_image_grid(const std::string& path, const at::Tensor& images);

}  // namespace facetex::train
