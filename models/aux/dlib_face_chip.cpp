// dlib's face-chip extraction for the face-recognition ResNet (compiled without the torch precompiled header, like
// dlib_landmarks.cpp: dlib and torch headers need not share a translation unit).
#include <dlib/image_processing/full_object_detection.h>
#include <dlib/image_transforms/interpolation.h>
#include <dlib/matrix.h>
#include <dlib/pixel.h>

#include <cmath>

#include "core/error.h"
#include "models/aux/dlib_face_chip.h"

namespace facetex::models::aux {

std::vector<uint8_t> extract_face_chip(const uint8_t* rgb, int height, int width, const Landmarks68& landmarks,
                                       int size, double padding) {
  FACETEX_CHECK_DATA(rgb != nullptr && height > 0 && width > 0, "empty image ({}x{})", width, height);
  FACETEX_CHECK_USAGE(size > 0 && padding >= 0, "face chip size {} / padding {} out of range", size, padding);
  dlib::matrix<dlib::rgb_pixel> img(height, width);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = rgb + static_cast<size_t>(y) * width * 3;
    for (int x = 0; x < width; ++x) img(y, x) = dlib::rgb_pixel(row[3 * x], row[3 * x + 1], row[3 * x + 2]);
  }
  std::vector<dlib::point> parts;
  parts.reserve(68);
  for (const auto& p : landmarks) parts.emplace_back(std::lround(p[0]), std::lround(p[1]));
  const dlib::full_object_detection shape(dlib::rectangle(0, 0, width - 1, height - 1), parts);
  dlib::matrix<dlib::rgb_pixel> chip;
  dlib::extract_image_chip(img, dlib::get_face_chip_details(shape, static_cast<unsigned long>(size), padding), chip);
  FACETEX_CHECK_RUNTIME(chip.nr() == size && chip.nc() == size, "face chip is {}x{}, expected {}", chip.nc(),
                        chip.nr(), size);
  std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const dlib::rgb_pixel& p = chip(y, x);
      uint8_t* o = out.data() + (static_cast<size_t>(y) * size + x) * 3;
      o[0] = p.red;
      o[1] = p.green;
      o[2] = p.blue;
    }
  return out;
}

}  // namespace facetex::models::aux
