#include "train/image_grid.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "data/image_codec.h"

namespace facetex::train {

void write_image_grid(const std::string& path, const at::Tensor& images_in) {
  FACETEX_CHECK_RUNTIME(images_in.dim() == 4 && images_in.size(1) == 3, "image grid: expected [N, 3, H, W], got {}",
                        images_in.sizes().vec());
  at::Tensor x = images_in.detach().cpu();
  if (x.scalar_type() != at::kByte) x = ((x.to(at::kFloat) + 1) * 127.5).round().clamp(0, 255).to(at::kByte);
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(double(n))));
  const int64_t rows = (n + cols - 1) / cols;
  at::Tensor padded = at::zeros({rows * cols, 3, h, w}, at::kByte);
  padded.narrow(0, 0, n).copy_(x);
  // [rows, cols, 3, h, w] -> [rows, h, cols, w, 3] -> HWC image
  at::Tensor grid = padded.reshape({rows, cols, 3, h, w}).permute({0, 3, 1, 4, 2}).reshape({rows * h, cols * w, 3}).contiguous();
  data::Image img{static_cast<int>(rows * h), static_cast<int>(cols * w),
                  std::vector<uint8_t>(grid.data_ptr<uint8_t>(), grid.data_ptr<uint8_t>() + grid.numel())};
  data::write_png(path, img);
}

}  // namespace facetex::train
