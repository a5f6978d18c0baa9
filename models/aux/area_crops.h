// Many small crops of a batch of images, each resampled to size x size with "area" interpolation
// (torch.nn.functional.interpolate(mode='area') == adaptive average pooling: output cell i averages input rows
// floor(i*h/size) .. ceil((i+1)*h/size) - 1, likewise for columns), which is how facenet_pytorch's MTCNN feeds its
// refinement and output nets. facenet_pytorch resamples one crop at a time; here a summed-area table of the whole
// batch makes every crop's every cell four gathers, so all crops of all images are produced in one pass on the
// images' device.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace facetex::models::aux {

class AreaCropSampler {
 public:
  // images: (B, C, H, W) float. The table is kept in float64, so cell sums are exact for 8-bit pixel values and
  // the averages round once, to float32.
  explicit AreaCropSampler(const at::Tensor& images);

  // Crops rows [top, bottom) x columns [left, right) of image image_index[n] for every n (all (N) int64 on the
  // images' device; windows must be non-empty and inside the image) -> (N, C, size, size) in the images' dtype.
  at::Tensor crops(const at::Tensor& image_index, const at::Tensor& top, const at::Tensor& bottom,
                   const at::Tensor& left, const at::Tensor& right, int64_t size) const;

 private:
  at::Tensor table_;  // (B * (H+1) * (W+1), C): sums of image[b, :, :r, :c] at row b*(H+1)*(W+1) + r*(W+1) + c
  int64_t height_ = 0, width_ = 0, channels_ = 0;
  at::ScalarType dtype_ = at::kFloat;
};

}  // namespace facetex::models::aux
