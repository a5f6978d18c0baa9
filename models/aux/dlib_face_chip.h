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

}  // namespace facetex::models::aux
