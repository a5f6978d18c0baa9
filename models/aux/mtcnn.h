// facenet_pytorch's MTCNN face detector as the paper's training step uses it (spec §2, §3.5:
// `mtcnn.detect(bg.permute(0, 2, 3, 1), landmarks=True)` with keep_all=False, selection_method='probability'),
// batched over the images and running on their device:
//   image pyramid (scales 12/min_face * factor^k while the shorter side stays >= 12 px) -> PNet on all images per
//   scale -> candidate boxes with P(face) >= 0.6 -> NMS 0.5 per image and scale -> NMS 0.7 per image -> PNet box
//   regression, squaring -> 24x24 area-resampled crops -> RNet, keep P > 0.7 -> NMS 0.7 -> regression, squaring
//   -> 48x48 crops -> ONet, keep P > 0.7 -> 5 landmarks -> regression -> NMS 0.7 over the smaller box ('Min')
//   -> per image the face with the highest probability, or none.
// The arithmetic (box generation, rerec, bbreg, pad, landmark placement, thresholds) follows
// facenet_pytorch/models/utils/detect_face.py; where this differs, see docs in mtcnn.cpp (per-image NMS without the
// coordinate-offset trick; crops that fall outside the image are dropped instead of shifting later crops).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include "models/aux/mtcnn_nets.h"

namespace facetex::models::aux {

struct MtcnnOptions {
  double min_face_size = 20;                 // pixels
  std::array<double, 3> thresholds = {0.6, 0.7, 0.7};
  double factor = 0.709;                     // pyramid scale step
  int64_t net_batch = 512;                   // crops per RNet/ONet call (bounds memory, as facenet_pytorch does)
};

// Every face that passed the cascade, all images together, in no particular order.
struct MtcnnFaces {
  at::Tensor image_index;  // (N) int64
  at::Tensor boxes;        // (N, 4) float [x1, y1, x2, y2], pixels
  at::Tensor probs;        // (N) float, ONet's P(face)
  at::Tensor points;       // (N, 5, 2) float (x, y): left eye, right eye, nose, left mouth corner, right mouth corner
};

// One row per image: its most probable face (selection_method='probability'). Rows without a face are zero.
struct MtcnnSelection {
  at::Tensor found;   // (B) bool
  at::Tensor boxes;   // (B, 4)
  at::Tensor probs;   // (B)
  at::Tensor points;  // (B, 5, 2)
};

// The pyramid scales for an h x w image, computed in double precision exactly like detect_face.
std::vector<double> mtcnn_pyramid_scales(int64_t height, int64_t width, double min_face_size, double factor);

class Mtcnn {
 public:
  Mtcnn(std::shared_ptr<PNet> pnet, std::shared_ptr<RNet> rnet, std::shared_ptr<ONet> onet, MtcnnOptions options = {});
  // The three nets from converted weight files (`facetex convert torch-state-dict` of pnet.pt, rnet.pt, onet.pt).
  static Mtcnn load(const std::filesystem::path& pnet_file, const std::filesystem::path& rnet_file,
                    const std::filesystem::path& onet_file, MtcnnOptions options = {});

  // Moves the nets; images passed to detect must be on the same device.
  void to(const c10::Device& device);

  // images: (B, H, W, 3) (as the training step passes them) or (B, 3, H, W), RGB float in [0, 255].
  MtcnnFaces detect_all(const at::Tensor& images) const;
  MtcnnSelection detect(const at::Tensor& images) const;

  const MtcnnOptions& options() const { return options_; }
  PNet& pnet() { return *pnet_; }
  RNet& rnet() { return *rnet_; }
  ONet& onet() { return *onet_; }

 private:
  std::shared_ptr<PNet> pnet_;
  std::shared_ptr<RNet> rnet_;
  std::shared_ptr<ONet> onet_;
  MtcnnOptions options_;
};

// The most probable face of each of `batch` images (ties: the first in `faces`).
MtcnnSelection select_most_probable(const MtcnnFaces& faces, int64_t batch);

}  // namespace facetex::models::aux
