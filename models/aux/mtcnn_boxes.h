// The box arithmetic of the MTCNN cascade, as facenet_pytorch's models/utils/detect_face.py does it: greedy
// non-maximum suppression within groups (image, or image and pyramid scale), squaring boxes (rerec), applying the
// nets' box regression (bbreg) and turning boxes into integer crop windows (pad). Boxes are (N, 4) float
// [x1, y1, x2, y2] in pixels of the input image, on any device; nothing here needs autograd.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace facetex::models::aux {

enum class Overlap {
  kUnion,  // intersection over union
  kMin,    // intersection over the smaller box (the cascade's last step)
};

struct NmsRule {
  double threshold = 0.5;  // a box is suppressed when its overlap with a kept box is > threshold
  Overlap overlap = Overlap::kUnion;
  // true: widths are x2 - x1 + 1 (detect_face's own nms_numpy); false: x2 - x1 (torchvision.ops.nms, used for
  // the union steps of the cascade).
  bool inclusive_pixels = false;
};

// Greedy NMS run independently per group (`groups`: (N) integer ids), in decreasing score order with ties kept in
// input order. Returns the indices of the kept boxes (int64, on the boxes' device), in decreasing score order
// like torchvision.ops.batched_nms. Boxes of different groups never suppress each other (no coordinate-offset
// trick, so negative coordinates cannot leak across images).
at::Tensor grouped_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& groups,
                       const NmsRule& rule);

// rerec: each box becomes the square of side max(w, h) (w = x2 - x1) around the same centre. Columns past 4 are
// kept.
at::Tensor square_boxes(const at::Tensor& boxes);

// bbreg: x1 += r0 * w, y1 += r1 * h, x2 += r2 * w, y2 += r3 * h with w = x2 - x1 + 1, h = y2 - y1 + 1.
// `regression` is (N, 4). Columns past 4 are kept.
at::Tensor regress_boxes(const at::Tensor& boxes, const at::Tensor& regression);

// pad: the integer crop window of each box, 0-based and half-open: rows [top, bottom), columns [left, right),
// from the truncated coordinates clipped to the image (detect_face's 1-based y..ey, x..ex). Windows of boxes
// entirely outside the image are empty (bottom <= top or right <= left).
struct CropWindows {
  at::Tensor top, bottom, left, right;  // (N) int64, on the boxes' device
  at::Tensor nonempty() const;          // (N) bool
};
CropWindows crop_windows(const at::Tensor& boxes, int64_t image_height, int64_t image_width);

}  // namespace facetex::models::aux
