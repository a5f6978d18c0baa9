// dlib's 128-D face-recognition ResNet (dlib_face_recognition_resnet_model_v1; the metric-learning `anet_type` of
// dlib's dnn_face_recognition_ex.cpp) re-implemented in LibTorch, with the weights read directly from the
// @vladmandic/face-api tfjs files (face_recognition_model-weights_manifest.json + its binary shards; uint8-quantised
// values are q * scale + min). Reading the tfjs files directly (no converter to HDF5) keeps the npm package the only
// source of truth and needs no conversion step; the 5.6 M values load in well under a second.
//
// Architecture (dlib semantics, NCHW):
//   input 150x150 RGB, (v - {122.782, 117.001, 104.298}) / 256
//   con 32 7x7 /2 (no padding) + affine + relu -> max_pool 3x3 /2 (no padding)            150 -> 72 -> 35
//   3 x ares<32>; ares_down<64> + 3 x ares<64>; ares_down<128> + 2 x ares<128>;
//   ares_down<256> + 2 x ares<256>; ares_down<256>                                        35 -> 17 -> 8 -> 4 -> 2
//   ares      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))                  (3x3 convs padded by 1)
//   ares_down = relu(avg_pool2x2/2(x) + affine(con3x3(relu(affine(con3x3/2(x))))))  (the strided conv unpadded)
//     where the two terms differ in size (8 -> 3 vs 4) or channels, dlib's add_prev zero-extends the smaller one
//     (bottom/right rows and trailing channels)
//   mean over the 2x2 map -> fc 256 -> 128 without bias. Distances < 0.6 mean "same person" (dlib's threshold).
// descriptor() runs under NoGradGuard; descriptor_differentiable() is the same forward with autograd on (an identity
// loss through the chips). Batched; CPU or CUDA.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "models/aux/dlib_face_chip.h"

namespace facetex::models::aux {

// A tfjs layers/graph weights manifest and its shards: name -> float32 tensor in the manifest's shape (dequantised).
// DataError naming the file for a missing shard, a short shard or an unsupported dtype.
std::map<std::string, at::Tensor> load_tfjs_weights(const std::filesystem::path& manifest_json);

class DlibFaceResNet {
 public:
  static constexpr int kChipSize = 150;
  static constexpr int kDescriptorSize = 128;
  static constexpr double kSamePersonDistance = 0.6;

  // manifest_json: face-api's model/face_recognition_model-weights_manifest.json.
  explicit DlibFaceResNet(const std::filesystem::path& manifest_json, c10::Device device = c10::Device("cpu"));

  // chips: [B, 3, 150, 150] RGB, uint8 or floating point on the 0..255 scale (any device; moved to the net's).
  // Returns [B, 128] float32 on the net's device.
  at::Tensor descriptor(const at::Tensor& chips) const;
  // The same forward without NoGradGuard: gradients flow back to `chips` (floating point, 0..255 scale). The
  // weights never require grad.
  at::Tensor descriptor_differentiable(const at::Tensor& chips) const;
  // Convenience: HWC uint8 chips (extract_face_chip's output) -> [B, 128].
  at::Tensor descriptor(const std::vector<std::vector<uint8_t>>& hwc_chips) const;

  c10::Device device() const { return device_; }

 private:
  struct Conv {
    at::Tensor weight, bias, gamma, beta;  // weight [out, in, h, w]; the affine as [1, C, 1, 1]
  };
  at::Tensor forward(const at::Tensor& chips) const;
  at::Tensor conv(const at::Tensor& x, const Conv& c, int stride, bool relu) const;
  at::Tensor residual(const at::Tensor& x, const std::string& name) const;
  at::Tensor residual_down(const at::Tensor& x, const std::string& name) const;

  c10::Device device_;
  std::map<std::string, Conv> convs_;
  at::Tensor fc_;  // [256, 128]
};

// A differentiable dlib face chip (extract_image_chip): images [B, C, H, W] floating point, chip_to_image [B, 2, 3]
// (FaceChipGeometry::m per image, in the images' pixel frame, integer pixel centres) -> [B, C, size, size]. Like
// extract_image_chips, an image is first reduced by pyramid_down<2> levels while the chip rect's area / 4 exceeds
// size² (the same separable [1 4 6 4 1]/16 sums, valid and strided as dlib's, and dlib's point_down p/2 - (1.25,
// 0.75) for the chip map), then sampled bilinearly (grid_sample, align_corners=true: pixel index i is at i in both
// frames, dlib's convention). Differences from dlib: no uint8 truncation (dlib floors each pyramid level and the
// bilinear result, ~0.5 lower on average), and where any of the four bilinear neighbours is outside the image dlib
// writes 0 while grid_sample blends with zeros. Gradients flow to `images`.
at::Tensor sample_face_chips(const at::Tensor& images, const at::Tensor& chip_to_image, int size = 150);
// The number of pyramid levels sample_face_chips uses for one [2, 3] chip_to_image map.
int face_chip_pyramid_levels(const at::Tensor& chip_to_image, int size = 150);

// HWC uint8 chips -> [B, 3, S, S] uint8.
at::Tensor chips_to_tensor(const std::vector<std::vector<uint8_t>>& hwc_chips, int size = DlibFaceResNet::kChipSize);

// Pairwise Euclidean distances [N, M] (float64) between descriptor rows.
at::Tensor descriptor_distances(const at::Tensor& a, const at::Tensor& b);

// Identity clusters: connected components of the graph joining descriptors closer than `threshold` (dlib's example
// uses chinese_whispers on the same graph; for well-separated identities both give the same partition). Returns a
// label per row, 0..K-1 in order of first appearance.
std::vector<int> threshold_clusters(const at::Tensor& descriptors, double threshold = 0.6);

}  // namespace facetex::models::aux
