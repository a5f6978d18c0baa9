// dlib's face-chip extraction for the face-recognition ResNet (compiled without the torch precompiled header, like
// dlib_landmarks.cpp: dlib and torch headers need not share a translation unit).
#include <dlib/image_processing/full_object_detection.h>
#include <dlib/image_transforms/image_pyramid.h>
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

FaceChipGeometry face_chip_geometry(const Landmarks68& landmarks, int size, double padding) {
  FACETEX_CHECK_USAGE(size > 0 && padding >= 0, "face chip size {} / padding {} out of range", size, padding);
  std::vector<dlib::point> parts;
  parts.reserve(68);
  for (const auto& p : landmarks) parts.emplace_back(std::lround(p[0]), std::lround(p[1]));
  // The detection rectangle plays no part in get_face_chip_details.
  const dlib::full_object_detection shape(dlib::rectangle(0, 0, 1, 1), parts);
  const dlib::chip_details d = dlib::get_face_chip_details(shape, static_cast<unsigned long>(size), padding);
  // extract_image_chips at level -1 (the translation by the bounding box cancels).
  const dlib::rectangle chip_rect(0, 0, static_cast<long>(d.cols) - 1, static_cast<long>(d.rows) - 1);
  const dlib::dpoint c = dlib::center(d.rect);
  std::vector<dlib::dpoint> from{chip_rect.tl_corner(), chip_rect.tr_corner(), chip_rect.bl_corner()};
  std::vector<dlib::dpoint> to{dlib::rotate_point<double>(c, d.rect.tl_corner(), d.angle),
                               dlib::rotate_point<double>(c, d.rect.tr_corner(), d.angle),
                               dlib::rotate_point<double>(c, d.rect.bl_corner(), d.angle)};
  const dlib::point_transform_affine t = dlib::find_affine_transform(from, to);
  FaceChipGeometry g;
  g.m[0] = t.get_m()(0, 0);
  g.m[1] = t.get_m()(0, 1);
  g.m[2] = t.get_b()(0);
  g.m[3] = t.get_m()(1, 0);
  g.m[4] = t.get_m()(1, 1);
  g.m[5] = t.get_b()(1);
  g.angle = d.angle;
  g.rect_width = d.rect.width();
  g.rect_height = d.rect.height();
  g.rows = static_cast<int>(d.rows);
  g.cols = static_cast<int>(d.cols);
  dlib::pyramid_down<2> pyr;
  dlib::drectangle r = d.rect;
  while (pyr.rect_down(r).area() > static_cast<double>(d.size())) {
    r = pyr.rect_down(r);
    ++g.pyramid_levels;
  }
  return g;
}

}  // namespace facetex::models::aux
