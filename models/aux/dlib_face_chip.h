// Torch-free declaration of dlib's aligned face chip (dlib_face_chip.cpp is a dlib translation unit); the
// face-recognition ResNet that consumes the chips is models/aux/dlib_face_resnet.h.
#pragma once

#include <cstdint>
#include <vector>

#include "models/aux/dlib_landmarks.h"

namespace facetex::models::aux {

// dlib's extract_image_chip(img, get_face_chip_details(shape, size, padding)) from the 68 landmarks of a face
// (dlib_landmarks.h coordinates): the similarity transform that maps the landmarks onto dlib's mean face, bilinear
// sampling (dlib's pyramid when the face is much larger than the chip). rgb: HWC uint8; returns size x size x 3
// HWC RGB uint8. dnn_face_recognition_ex.cpp uses size 150, padding 0.25.
std::vector<uint8_t> extract_face_chip(const uint8_t* rgb, int height, int width, const Landmarks68& landmarks,
                                       int size = 150, double padding = 0.25);

// The geometry extract_face_chip samples with: dlib's get_face_chip_details (same rounded landmarks) as the affine
// map from chip pixel (c, r) to image pixel (x, y), x = m[0]·c + m[1]·r + m[2], y = m[3]·c + m[4]·r + m[5] (both in
// dlib's integer-pixel-centre convention: chip pixels 0 and size-1 land on the rotated rect's corners, the
// find_affine_transform of extract_image_chips at full resolution), plus the rect's area and the number of
// pyramid_down<2> levels dlib uses for it. For a differentiable version see sample_face_chips (dlib_face_resnet.h).
struct FaceChipGeometry {
  double m[6] = {0, 0, 0, 0, 0, 0};
  double angle = 0;            // radians
  double rect_width = 0, rect_height = 0;
  int rows = 0, cols = 0;
  int pyramid_levels = 0;      // 0: bilinear on the image itself
};
FaceChipGeometry face_chip_geometry(const Landmarks68& landmarks, int size = 150, double padding = 0.25);

}  // namespace facetex::models::aux
