#include "models/aux/area_crops.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace facetex::models::aux {

AreaCropSampler::AreaCropSampler(const at::Tensor& images) {
  FACETEX_CHECK_RUNTIME(images.dim() == 4, "AreaCropSampler: images must be [B, C, H, W], got {}",
                        images.sizes().vec());
  channels_ = images.size(1);
  height_ = images.size(2);
  width_ = images.size(3);
  dtype_ = images.scalar_type();
  at::NoGradGuard no_grad;
  at::Tensor sums = images.to(at::kDouble).permute({0, 2, 3, 1}).cumsum(1).cumsum(2);  // (B, H, W, C)
  sums = at::constant_pad_nd(sums, {0, 0, 1, 0, 1, 0});                                 // zero row and column first
  table_ = sums.reshape({-1, channels_}).contiguous();
}

at::Tensor AreaCropSampler::crops(const at::Tensor& image_index, const at::Tensor& top, const at::Tensor& bottom,
                                  const at::Tensor& left, const at::Tensor& right, int64_t size) const {
  at::NoGradGuard no_grad;
  const int64_t n = image_index.size(0);
  if (n == 0) return at::empty({0, channels_, size, size}, table_.options().dtype(dtype_));
  const at::Tensor cell = at::arange(size, image_index.options().dtype(at::kLong));
  // Adaptive-pooling cell bounds in integer arithmetic: start = floor(i*h/size), end = ceil((i+1)*h/size).
  auto bounds = [&](const at::Tensor& lo, const at::Tensor& hi) {
    const at::Tensor extent = (hi - lo).unsqueeze(1);  // (N, 1)
    const at::Tensor start = lo.unsqueeze(1) + at::div(cell * extent, size, "floor");
    const at::Tensor end = lo.unsqueeze(1) + at::div((cell + 1) * extent + (size - 1), size, "floor");
    return std::make_pair(start, end);  // (N, size) each
  };
  const auto [row0, row1] = bounds(top, bottom);
  const auto [col0, col1] = bounds(left, right);
  const at::Tensor base = (image_index * ((height_ + 1) * (width_ + 1))).view({n, 1, 1});
  auto gather = [&](const at::Tensor& rows, const at::Tensor& cols) {
    const at::Tensor flat = base + rows.unsqueeze(2) * (width_ + 1) + cols.unsqueeze(1);  // (N, size, size)
    return table_.index_select(0, flat.reshape({-1})).view({n, size, size, channels_});
  };
  const at::Tensor sum = gather(row1, col1) - gather(row0, col1) - gather(row1, col0) + gather(row0, col0);
  const at::Tensor count = ((row1 - row0).unsqueeze(2) * (col1 - col0).unsqueeze(1)).unsqueeze(3);
  return (sum / count.to(at::kDouble)).permute({0, 3, 1, 2}).to(dtype_).contiguous();
}

}  // namespace facetex::models::aux
