// The cascade's box arithmetic and crop resampling against brute-force definitions (no Python needed).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "models/aux/area_crops.h"
#include "models/aux/mtcnn_boxes.h"

using namespace facetex::models::aux;

namespace {

// The textbook greedy NMS: visit boxes by decreasing score (ties in input order); keep a box unless a kept box of
// its group overlaps it by more than the threshold.
std::vector<int64_t> brute_force_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& groups,
                                     const NmsRule& rule) {
  const auto b = boxes.accessor<float, 2>();
  const auto s = scores.accessor<float, 1>();
  const auto g = groups.accessor<int64_t, 1>();
  const int64_t n = boxes.size(0);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return s[i] > s[j]; });
  const float e = rule.inclusive_pixels ? 1.f : 0.f;
  auto area = [&](int64_t i) { return (b[i][2] - b[i][0] + e) * (b[i][3] - b[i][1] + e); };
  std::vector<int64_t> kept;
  for (int64_t i : order) {
    bool drop = false;
    for (int64_t k : kept) {
      if (g[k] != g[i]) continue;
      const float w = std::max(0.f, std::min(b[k][2], b[i][2]) - std::max(b[k][0], b[i][0]) + e);
      const float h = std::max(0.f, std::min(b[k][3], b[i][3]) - std::max(b[k][1], b[i][1]) + e);
      const float inter = w * h;
      const float o = rule.overlap == Overlap::kUnion ? inter / (area(k) + area(i) - inter)
                                                      : inter / std::min(area(k), area(i));
      // float overlap, double threshold: the comparison torchvision's nms makes
      if (o > rule.threshold) {
        drop = true;
        break;
      }
    }
    if (!drop) kept.push_back(i);
  }
  return kept;
}

at::Tensor random_boxes(int64_t n, at::Generator gen) {
  const at::Tensor xy = at::rand({n, 2}, gen) * 200 - 20;  // some negative coordinates
  const at::Tensor wh = at::rand({n, 2}, gen) * 40 + 1;
  return at::cat({xy, xy + wh}, 1);
}

}  // namespace

TEST(GroupedNms, MatchesBruteForceGreedyNms) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  // 2500 boxes: more than one block of the blocked implementation.
  const at::Tensor boxes = random_boxes(2500, gen);
  const at::Tensor scores = at::rand({2500}, gen);
  const at::Tensor groups = at::randint(0, 3, {2500}, gen, at::kLong);
  for (const NmsRule& rule : {NmsRule{0.5}, NmsRule{0.7}, NmsRule{0.7, Overlap::kMin, true}, NmsRule{0.3, Overlap::kUnion, true}}) {
    const at::Tensor keep = grouped_nms(boxes, scores, groups, rule);
    const std::vector<int64_t> expected = brute_force_nms(boxes, scores, groups, rule);
    ASSERT_EQ(keep.size(0), static_cast<int64_t>(expected.size())) << rule.threshold;
    EXPECT_TRUE(at::equal(keep, at::tensor(expected, at::kLong))) << rule.threshold;
  }
}

TEST(GroupedNms, HandWorkedExample) {
  // a and b overlap with IoU 64/96 = 0.67 (x2 - x1 widths); c is apart.
  const at::Tensor boxes = at::tensor({0.f, 0.f, 10.f, 8.f, 2.f, 0.f, 12.f, 8.f, 50.f, 50.f, 60.f, 60.f}).view({3, 4});
  const at::Tensor scores = at::tensor({0.8f, 0.9f, 0.1f});
  const at::Tensor one_group = at::zeros({3}, at::kLong);
  EXPECT_TRUE(at::equal(grouped_nms(boxes, scores, one_group, {0.5}), at::tensor({1, 2}, at::kLong)));
  EXPECT_TRUE(at::equal(grouped_nms(boxes, scores, one_group, {0.7}), at::tensor({1, 0, 2}, at::kLong)));
  // Different images never suppress each other.
  EXPECT_TRUE(at::equal(grouped_nms(boxes, scores, at::tensor({0, 1, 0}, at::kLong), {0.5}),
                        at::tensor({1, 0, 2}, at::kLong)));
  // 'Min': intersection over the smaller box (inclusive pixels: 9*9 over 11*9) = 0.818 > 0.7.
  EXPECT_TRUE(at::equal(grouped_nms(boxes, scores, one_group, {0.7, Overlap::kMin, true}),
                        at::tensor({1, 2}, at::kLong)));
  EXPECT_EQ(grouped_nms(at::empty({0, 4}), at::empty({0}), at::empty({0}, at::kLong), {0.5}).size(0), 0);
}

TEST(MtcnnBoxes, SquareRegressAndWindow) {
  const at::Tensor box = at::tensor({10.f, 20.f, 30.f, 60.f, 0.9f}).view({1, 5});
  // rerec: side max(20, 40) = 40 around the centre (20, 40); the score column is kept.
  EXPECT_TRUE(at::equal(square_boxes(box), at::tensor({0.f, 20.f, 40.f, 60.f, 0.9f}).view({1, 5})));
  // bbreg: w = 21, h = 41 (inclusive pixels).
  const at::Tensor reg = at::tensor({0.1f, -0.1f, 0.2f, 0.f}).view({1, 4});
  EXPECT_TRUE(at::allclose(regress_boxes(box, reg), at::tensor({12.1f, 15.9f, 34.2f, 60.f, 0.9f}).view({1, 5})));
  // pad: truncate, clip to [1, w] x [1, h] (1-based), slice [y - 1, ey).
  const at::Tensor boxes = at::tensor({-5.7f, 3.9f, 20.2f, 130.f, 150.f, 10.f, 170.f, 30.f}).view({2, 4});
  const CropWindows win = crop_windows(boxes, 120, 160);
  EXPECT_TRUE(at::equal(win.left, at::tensor({0, 149}, at::kLong)));
  EXPECT_TRUE(at::equal(win.top, at::tensor({2, 9}, at::kLong)));
  EXPECT_TRUE(at::equal(win.right, at::tensor({20, 160}, at::kLong)));
  EXPECT_TRUE(at::equal(win.bottom, at::tensor({120, 30}, at::kLong)));
  EXPECT_TRUE(win.nonempty().all().item<bool>());
  const CropWindows outside = crop_windows(at::tensor({170.f, 10.f, 190.f, 30.f}).view({1, 4}), 120, 160);
  EXPECT_FALSE(outside.nonempty().any().item<bool>());
}

TEST(AreaCropSampler, EqualsAdaptiveAveragePoolingOfEachCrop) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor images = at::rand({2, 3, 90, 70}, gen) * 255;
  const AreaCropSampler sampler(images);
  // Crops larger than, equal to and smaller than the output (area "upsampling" repeats pixels), at the borders.
  const std::vector<std::array<int64_t, 5>> windows = {
      {0, 0, 90, 0, 70}, {1, 10, 58, 3, 51}, {0, 5, 29, 40, 64}, {1, 80, 90, 60, 70}, {0, 0, 13, 0, 30}};
  for (int64_t size : {24, 48}) {
    std::vector<int64_t> img, top, bottom, left, right;
    for (const auto& w : windows) {
      img.push_back(w[0]);
      top.push_back(w[1]);
      bottom.push_back(w[2]);
      left.push_back(w[3]);
      right.push_back(w[4]);
    }
    const at::Tensor crops = sampler.crops(at::tensor(img, at::kLong), at::tensor(top, at::kLong),
                                           at::tensor(bottom, at::kLong), at::tensor(left, at::kLong),
                                           at::tensor(right, at::kLong), size);
    ASSERT_EQ(crops.sizes(), (std::vector<int64_t>{5, 3, size, size}));
    for (size_t k = 0; k < windows.size(); ++k) {
      const auto& w = windows[k];
      const at::Tensor slice = images[w[0]].slice(1, w[1], w[2]).slice(2, w[3], w[4]).unsqueeze(0);
      const at::Tensor expected = at::adaptive_avg_pool2d(slice.to(at::kDouble), {size, size}).to(at::kFloat);
      EXPECT_LE((crops[k] - expected[0]).abs().max().item<double>(), 1e-4) << k;  // float32 rounding of ~255
    }
  }
}
