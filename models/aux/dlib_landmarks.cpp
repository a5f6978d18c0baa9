// The only dlib translation unit (compiled without the torch precompiled header: see models/aux/sources.cmake).
#include "models/aux/dlib_landmarks.h"

#include <dlib/data_io/image_dataset_metadata.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms/interpolation.h>
#include <dlib/matrix.h>
#include <dlib/serialize.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/error.h"

namespace fs = std::filesystem;

namespace facetex::models::aux {
namespace {

dlib::rectangle to_dlib(const FaceBox& b) {
  // dlib rectangles are inclusive: right = left + width - 1.
  return dlib::rectangle(std::lround(b.left), std::lround(b.top), std::lround(b.left + b.width) - 1,
                         std::lround(b.top + b.height) - 1);
}

}  // namespace

struct DlibLandmarker::Impl {
  DetectorOptions options;
  dlib::frontal_face_detector detector = dlib::get_frontal_face_detector();
  dlib::shape_predictor predictor;

  DetectedFace predict(const dlib::matrix<dlib::rgb_pixel>& img, const FaceBox& box, double score) {
    const dlib::full_object_detection shape = predictor(img, to_dlib(box));
    FACETEX_CHECK_RUNTIME(shape.num_parts() == 68, "shape predictor returned {} points, expected 68",
                          shape.num_parts());
    DetectedFace face;
    face.box = box;
    face.score = score;
    for (unsigned long i = 0; i < 68; ++i) {
      face.landmarks[i] = {static_cast<float>(shape.part(i).x()), static_cast<float>(shape.part(i).y())};
    }
    return face;
  }
};

namespace {

dlib::matrix<dlib::rgb_pixel> to_matrix(const uint8_t* rgb, int height, int width) {
  FACETEX_CHECK_DATA(rgb != nullptr && height > 0 && width > 0, "empty image ({}x{})", width, height);
  dlib::matrix<dlib::rgb_pixel> img(height, width);
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = rgb + static_cast<size_t>(y) * width * 3;
    for (int x = 0; x < width; ++x) img(y, x) = dlib::rgb_pixel(row[3 * x], row[3 * x + 1], row[3 * x + 2]);
  }
  return img;
}

}  // namespace

DlibLandmarker::DlibLandmarker(const fs::path& shape_predictor_dat, DetectorOptions options)
    : impl_(std::make_unique<Impl>()) {
  FACETEX_CHECK_USAGE(options.upsample >= 0 && options.upsample <= 3, "detector upsample must be 0..3, got {}",
                      options.upsample);
  impl_->options = options;
  FACETEX_CHECK_DATA(fs::is_regular_file(shape_predictor_dat),
                     "{}: shape predictor not found (scripts/fetch_assets.sh installs "
                     "dlib/shape_predictor_68_face_landmarks.dat)",
                     shape_predictor_dat.string());
  try {
    dlib::deserialize(shape_predictor_dat.string()) >> impl_->predictor;
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: not a dlib shape predictor: {}", shape_predictor_dat.string(), e.what()));
  }
  FACETEX_CHECK_DATA(impl_->predictor.num_parts() == 68, "{}: shape predictor has {} parts, expected 68",
                     shape_predictor_dat.string(), impl_->predictor.num_parts());
}

DlibLandmarker::~DlibLandmarker() = default;

std::vector<DetectedFace> DlibLandmarker::detect(const uint8_t* rgb, int height, int width) {
  const dlib::matrix<dlib::rgb_pixel> img = to_matrix(rgb, height, width);
  // Detect on an image enlarged 2^upsample times (bilinear, corners aligned), map the boxes back.
  std::vector<dlib::rect_detection> dets;
  double to_x = 1.0, to_y = 1.0;  // enlarged -> original coordinates
  int upsample = impl_->options.upsample;
  const int limit = impl_->options.max_upsampled_side;
  while (upsample > 0 && limit > 0 && (static_cast<long>(std::max(height, width)) << upsample) > limit) --upsample;
  if (upsample == 0) {
    impl_->detector(img, dets, impl_->options.adjust_threshold);
  } else {
    const long f = 1L << upsample;
    dlib::matrix<dlib::rgb_pixel> big(height * f, width * f);
    dlib::resize_image(img, big, dlib::interpolate_bilinear());
    to_x = width > 1 ? (width - 1.0) / (width * f - 1.0) : 1.0;
    to_y = height > 1 ? (height - 1.0) / (height * f - 1.0) : 1.0;
    impl_->detector(big, dets, impl_->options.adjust_threshold);
  }
  std::vector<DetectedFace> faces;
  faces.reserve(dets.size());
  for (const auto& d : dets) {
    // Box corners as continuous coordinates of the enlarged image: [left, right + 1).
    const double l = d.rect.left() * to_x, t = d.rect.top() * to_y;
    const double r = (d.rect.right() + 1) * to_x, b = (d.rect.bottom() + 1) * to_y;
    faces.push_back(impl_->predict(img, FaceBox{l, t, r - l, b - t}, d.detection_confidence));
  }
  std::stable_sort(faces.begin(), faces.end(),
                   [](const DetectedFace& a, const DetectedFace& b) { return a.box.area() > b.box.area(); });
  return faces;
}

DetectedFace DlibLandmarker::landmarks_in_box(const uint8_t* rgb, int height, int width, const FaceBox& box) {
  return impl_->predict(to_matrix(rgb, height, width), box, 0.0);
}

std::vector<GroundTruthImage> load_landmark_xml(const fs::path& xml) {
  FACETEX_CHECK_DATA(fs::is_regular_file(xml), "{}: no such file", xml.string());
  dlib::image_dataset_metadata::dataset meta;
  try {
    dlib::image_dataset_metadata::load_image_dataset_metadata(meta, xml.string());
  } catch (const std::exception& e) {
    throw DataError(fmt::format("{}: not a dlib landmark XML: {}", xml.string(), e.what()));
  }
  std::vector<GroundTruthImage> out;
  for (const auto& im : meta.images) {
    GroundTruthImage g;
    g.file = xml.parent_path() / im.filename;
    g.width = static_cast<int>(im.width);
    g.height = static_cast<int>(im.height);
    for (const auto& b : im.boxes) {
      GroundTruthFace f;
      f.box = FaceBox{static_cast<double>(b.rect.left()), static_cast<double>(b.rect.top()),
                      static_cast<double>(b.rect.width()), static_cast<double>(b.rect.height())};
      f.ignore = b.ignore;
      int found = 0;
      for (int i = 0; i < 68; ++i) {
        const std::string name = fmt::format("{:02d}", i);
        auto it = b.parts.find(name);
        if (it == b.parts.end()) continue;
        f.landmarks[i] = {static_cast<float>(it->second.x()), static_cast<float>(it->second.y())};
        ++found;
      }
      FACETEX_CHECK_DATA(found == 0 || found == 68, "{}: {}: a box has {} of the 68 parts", xml.string(),
                         im.filename, found);
      f.has_parts = found == 68;
      g.faces.push_back(f);
    }
    out.push_back(std::move(g));
  }
  return out;
}

double box_iou(const FaceBox& a, const FaceBox& b) {
  const double ix = std::max(0.0, std::min(a.left + a.width, b.left + b.width) - std::max(a.left, b.left));
  const double iy = std::max(0.0, std::min(a.top + a.height, b.top + b.height) - std::max(a.top, b.top));
  const double inter = ix * iy, uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

double interocular_distance(const Landmarks68& p) {
  return std::hypot(double(p[36][0]) - p[45][0], double(p[36][1]) - p[45][1]);
}

double landmark_nme(const Landmarks68& predicted, const Landmarks68& truth) {
  const double iod = interocular_distance(truth);
  FACETEX_CHECK_DATA(iod > 0, "ground-truth landmarks have coincident outer eye corners");
  double sum = 0;
  for (int i = 0; i < 68; ++i) {
    sum += std::hypot(double(predicted[i][0]) - truth[i][0], double(predicted[i][1]) - truth[i][1]);
  }
  return sum / 68.0 / iod;
}

std::vector<int> match_boxes(const std::vector<FaceBox>& truth, const std::vector<FaceBox>& predicted,
                             double min_iou) {
  std::vector<std::tuple<double, int, int>> pairs;
  for (int i = 0; i < static_cast<int>(truth.size()); ++i) {
    for (int j = 0; j < static_cast<int>(predicted.size()); ++j) {
      const double iou = box_iou(truth[i], predicted[j]);
      if (iou >= min_iou) pairs.emplace_back(iou, i, j);
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  std::vector<int> match(truth.size(), -1);
  std::vector<bool> used(predicted.size(), false);
  for (const auto& [iou, i, j] : pairs) {
    if (match[i] >= 0 || used[j]) continue;
    match[i] = j;
    used[j] = true;
  }
  return match;
}

}  // namespace facetex::models::aux
