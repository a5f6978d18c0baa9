#include "models/aux/mtcnn_boxes.h"

#include <ATen/ATen.h>

#include <vector>

#include "core/error.h"

namespace facetex::models::aux {

namespace {

// Suppression is decided a block of boxes at a time: the overlaps of a block with every box kept so far and with
// itself are computed as matrices on the boxes' device, and only the in-block greedy sweep runs on the host.
// Memory stays O(kept x block) however many candidates the proposal net produces.
constexpr int64_t kNmsBlock = 1024;

// overlap[i][j] > threshold for boxes a[i], b[j] of the same group: (A, B) bool.
at::Tensor suppresses(const at::Tensor& a, const at::Tensor& a_groups, const at::Tensor& b,
                      const at::Tensor& b_groups, const NmsRule& rule) {
  const double e = rule.inclusive_pixels ? 1.0 : 0.0;
  auto col = [](const at::Tensor& t, int64_t i) { return t.select(1, i); };
  const at::Tensor ax1 = col(a, 0).unsqueeze(1), ay1 = col(a, 1).unsqueeze(1), ax2 = col(a, 2).unsqueeze(1),
                   ay2 = col(a, 3).unsqueeze(1);
  const at::Tensor bx1 = col(b, 0).unsqueeze(0), by1 = col(b, 1).unsqueeze(0), bx2 = col(b, 2).unsqueeze(0),
                   by2 = col(b, 3).unsqueeze(0);
  const at::Tensor area_a = (ax2 - ax1 + e) * (ay2 - ay1 + e), area_b = (bx2 - bx1 + e) * (by2 - by1 + e);
  const at::Tensor w = (at::minimum(ax2, bx2) - at::maximum(ax1, bx1) + e).clamp_min(0);
  const at::Tensor h = (at::minimum(ay2, by2) - at::maximum(ay1, by1) + e).clamp_min(0);
  const at::Tensor inter = w * h;
  const at::Tensor overlap = rule.overlap == Overlap::kUnion ? inter / (area_a + area_b - inter)
                                                             : inter / at::minimum(area_a, area_b);
  // Compared in double like torchvision's nms (float overlap > double threshold), not in the boxes' float32.
  return (overlap.to(at::kDouble) > rule.threshold).logical_and(a_groups.unsqueeze(1) == b_groups.unsqueeze(0));
}

}  // namespace

at::Tensor grouped_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& groups,
                       const NmsRule& rule) {
  FACETEX_CHECK_RUNTIME(boxes.dim() == 2 && boxes.size(1) >= 4 && scores.dim() == 1 && groups.dim() == 1 &&
                            scores.size(0) == boxes.size(0) && groups.size(0) == boxes.size(0),
                        "grouped_nms: boxes [N, 4], scores [N] and groups [N] expected, got {}, {}, {}",
                        boxes.sizes().vec(), scores.sizes().vec(), groups.sizes().vec());
  at::NoGradGuard no_grad;
  const int64_t n = boxes.size(0);
  const auto index_options = boxes.options().dtype(at::kLong);
  if (n == 0) return at::empty({0}, index_options);
  const at::Tensor order = std::get<1>(at::sort(scores, /*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted = boxes.index_select(0, order).narrow(1, 0, 4);
  const at::Tensor sorted_groups = groups.index_select(0, order);

  std::vector<int64_t> kept;  // positions in `order`
  at::Tensor kept_boxes = sorted.narrow(0, 0, 0), kept_groups = sorted_groups.narrow(0, 0, 0);
  for (int64_t start = 0; start < n; start += kNmsBlock) {
    const int64_t len = std::min(kNmsBlock, n - start);
    const at::Tensor block = sorted.narrow(0, start, len), block_groups = sorted_groups.narrow(0, start, len);
    at::Tensor dropped = kept.empty()
                             ? at::zeros({len}, at::kBool)
                             : suppresses(kept_boxes, kept_groups, block, block_groups, rule).any(0).cpu();
    const at::Tensor within = suppresses(block, block_groups, block, block_groups, rule).cpu().contiguous();
    const bool* m = within.data_ptr<bool>();
    bool* d = dropped.data_ptr<bool>();
    std::vector<int64_t> block_kept;
    for (int64_t i = 0; i < len; ++i) {
      if (d[i]) continue;
      block_kept.push_back(i);
      kept.push_back(start + i);
      for (int64_t j = i + 1; j < len; ++j) d[j] = d[j] || m[i * len + j];
    }
    if (!block_kept.empty()) {
      const at::Tensor idx = at::tensor(block_kept, at::kLong).to(boxes.device());
      kept_boxes = at::cat({kept_boxes, block.index_select(0, idx)});
      kept_groups = at::cat({kept_groups, block_groups.index_select(0, idx)});
    }
  }
  return order.index_select(0, at::tensor(kept, at::kLong).to(boxes.device()));
}

at::Tensor square_boxes(const at::Tensor& boxes) {
  at::Tensor out = boxes.clone();
  const at::Tensor x1 = boxes.select(1, 0), y1 = boxes.select(1, 1);
  const at::Tensor w = boxes.select(1, 2) - x1, h = boxes.select(1, 3) - y1;
  const at::Tensor side = at::maximum(w, h);
  const at::Tensor nx1 = x1 + w * 0.5 - side * 0.5, ny1 = y1 + h * 0.5 - side * 0.5;
  out.select(1, 0).copy_(nx1);
  out.select(1, 1).copy_(ny1);
  out.select(1, 2).copy_(nx1 + side);
  out.select(1, 3).copy_(ny1 + side);
  return out;
}

at::Tensor regress_boxes(const at::Tensor& boxes, const at::Tensor& regression) {
  at::Tensor out = boxes.clone();
  const at::Tensor w = boxes.select(1, 2) - boxes.select(1, 0) + 1;
  const at::Tensor h = boxes.select(1, 3) - boxes.select(1, 1) + 1;
  for (int64_t c = 0; c < 4; ++c) {
    out.select(1, c).copy_(boxes.select(1, c) + regression.select(1, c) * (c % 2 == 0 ? w : h));
  }
  return out;
}

CropWindows crop_windows(const at::Tensor& boxes, int64_t image_height, int64_t image_width) {
  // detect_face truncates towards zero, clips x, y to >= 1 and ex, ey to <= w, h, and slices [y - 1, ey).
  const at::Tensor t = boxes.narrow(1, 0, 4).trunc().to(at::kInt).to(at::kLong);
  CropWindows win;
  win.left = t.select(1, 0).clamp_min(1) - 1;
  win.top = t.select(1, 1).clamp_min(1) - 1;
  win.right = t.select(1, 2).clamp_max(image_width);
  win.bottom = t.select(1, 3).clamp_max(image_height);
  return win;
}

at::Tensor CropWindows::nonempty() const { return (bottom > top).logical_and(right > left); }

}  // namespace facetex::models::aux
