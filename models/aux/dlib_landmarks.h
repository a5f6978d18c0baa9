// dlib's HOG frontal face detector and 68-point shape predictor (iBUG 300-W scheme), from Debian's libdlib, plus
// the reader of dlib's landmark ground-truth XML (imglab format) and the usual landmark metrics. This is the only
// translation unit that includes dlib headers; the interface is plain C++ (RGB uint8 HWC pixels in, pixel
// coordinates out: x right, y down, pixel centres at integer coordinates, as dlib reports them).
//
// Licence note: shape_predictor_68_face_landmarks.dat is research/non-commercial upstream (iBUG 300-W).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace facetex::models::aux {

struct FaceBox {
  double left = 0, top = 0, width = 0, height = 0;  // pixels
  double area() const { return width * height; }
};

using Landmarks68 = std::array<std::array<float, 2>, 68>;  // (x, y) per iBUG point, 0-based order

struct DetectedFace {
  FaceBox box;
  double score = 0;  // HOG detector confidence (higher is surer); 0 for boxes given by the caller
  Landmarks68 landmarks{};
};

struct DetectorOptions {
  // Image doublings before detection: the HOG detector finds faces down to about 80x80 pixels, so 1 finds faces
  // of about 40x40 (dlib's own examples use 1). Costs about 4x the time per doubling.
  int upsample = 1;
  // Fewer doublings are used where the enlarged image would exceed this side (memory and time grow with the
  // area; faces in such photos are large anyway). 0 = no limit.
  int max_upsampled_side = 2400;
  double adjust_threshold = 0.0;  // added to the detector's threshold: < 0 finds more (and more false) faces
};

// Holds the detector and the predictor (the .dat deserialises in about a second: create one and reuse it).
// Not thread-safe: use one per thread.
class DlibLandmarker {
 public:
  // DataError naming the file when the predictor cannot be read.
  explicit DlibLandmarker(const std::filesystem::path& shape_predictor_dat, DetectorOptions options = {});
  ~DlibLandmarker();
  DlibLandmarker(const DlibLandmarker&) = delete;
  DlibLandmarker& operator=(const DlibLandmarker&) = delete;

  // Every face found, each with its 68 landmarks, largest box first (empty = no face).
  std::vector<DetectedFace> detect(const uint8_t* rgb, int height, int width);
  // The 68 landmarks inside a given box (no detection), e.g. for ground-truth boxes.
  DetectedFace landmarks_in_box(const uint8_t* rgb, int height, int width, const FaceBox& box);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One face of a landmark ground-truth file.
struct GroundTruthFace {
  FaceBox box;
  bool ignore = false;     // the box is marked ignore='1'
  bool has_parts = false;  // all 68 parts present
  Landmarks68 landmarks{};
};
struct GroundTruthImage {
  std::filesystem::path file;  // resolved against the XML's folder
  int width = 0, height = 0;   // as written in the XML (0 if absent)
  std::vector<GroundTruthFace> faces;
};
// dlib's imglab XML (e.g. faces/testing_with_face_landmarks.xml): images, boxes, parts named "00".."67".
// DataError naming the file when it cannot be parsed.
std::vector<GroundTruthImage> load_landmark_xml(const std::filesystem::path& xml);

double box_iou(const FaceBox& a, const FaceBox& b);
// Distance between the outer eye corners (points 36 and 45), the usual 300-W normaliser.
double interocular_distance(const Landmarks68& points);
// Mean point-to-point distance over the 68 points divided by the ground truth's inter-ocular distance.
double landmark_nme(const Landmarks68& predicted, const Landmarks68& truth);

// Matches predictions to ground-truth boxes one to one, greedily by decreasing IoU, keeping pairs with
// IoU >= min_iou. Returns, per ground-truth box, the index of its prediction or -1.
std::vector<int> match_boxes(const std::vector<FaceBox>& truth, const std::vector<FaceBox>& predicted,
                             double min_iou = 0.3);

}  // namespace facetex::models::aux
