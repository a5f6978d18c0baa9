// Feature extraction for FID/KID and the identity metric, and the distributed gathering of features.
//   inception : NVIDIA's Inception-v3 TorchScript file (inception-2015-12-05.pt) when the user provides it:
//               model(uint8 images [B, 3, H, W], return_features=True) -> [B, 2048] (it resizes internally).
//   dlib      : the offline stand-in — dlib's face-recognition ResNet (models/aux/dlib_face_resnet.h) on the whole
//               image resized to 150x150 (antialiased bilinear): 128-D. Numbers computed with it are FID_dlib /
//               KID_dlib and are not comparable with published FID/KID.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace facetex::cluster {
class Communicator;
}

namespace facetex::train::metrics {

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  virtual std::string name() const = 0;  // "inception" | "dlib"
  // What the features depend on besides the images: the name and the weight file's stamp (core/digest.h).
  virtual std::string identity() const = 0;
  virtual int64_t dim() const = 0;
  // images: [B, 3, H, W] uint8 RGB (one size per call) -> [B, dim] float64 on the CPU.
  virtual at::Tensor features(const at::Tensor& images) = 0;
  std::string fid_label() const { return name() == "inception" ? "FID" : "FID_" + name(); }
  std::string kid_label() const { return name() == "inception" ? "KID" : "KID_" + name(); }
};

// DataError naming the file when it cannot be loaded.
std::unique_ptr<FeatureExtractor> make_inception_extractor(const std::filesystem::path& torchscript,
                                                           const c10::Device& device);
std::unique_ptr<FeatureExtractor> make_dlib_extractor(const std::filesystem::path& face_api_manifest,
                                                      const c10::Device& device);

// Images of a folder (every .png/.jpg/.jpeg below it, sorted by path) or of a packed dataset (a folder with
// dataset.json: its rows in order).
class ImageSource {
 public:
  explicit ImageSource(const std::filesystem::path& path);
  ~ImageSource();
  int64_t size() const;
  // [3, H, W] uint8. DataError naming the item when it cannot be decoded.
  at::Tensor read(int64_t index) const;
  std::string describe(int64_t index) const;
  // What items [0, n) are, for a cache key: a packed dataset's manifest bytes, or each file's path relative to the
  // folder, size and modification time.
  std::string identity(int64_t n) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Features of items [0, n) of `source`, n = min(size, max_items) (max_items <= 0: all). Under several ranks each rank
// extracts items i with i % size == rank and the rows are gathered (allgather through `comm`), so every rank
// returns the same [n, dim] float64 tensor in item order — the numbers do not depend on the rank count.
// comm may be null (one process).
at::Tensor gather_features(const ImageSource& source, FeatureExtractor& extractor, cluster::Communicator* comm,
                           int64_t max_items = 0, int batch = 32);

// Rows [n_local, D] of rank r holding items r, r + size, ... -> all rows [n, D] in item order on every rank.
at::Tensor allgather_strided_rows(const at::Tensor& local, int64_t total, cluster::Communicator* comm);

}  // namespace facetex::train::metrics
