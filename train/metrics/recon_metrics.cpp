#include "train/metrics/recon_metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace facetex::train::metrics {
namespace {

at::Tensor as_chw(const at::Tensor& t, const char* what) {
  FACETEX_CHECK_USAGE(t.dim() == 3, "{} must be [C, H, W], got {} dimensions", what, t.dim());
  return t.to(at::kCPU, at::kDouble);
}

// Both scores run over bands of rows, converting one band at a time to float64: the full frame of a 24-megapixel
// photo (reconstruct's result.json) then needs a band's temporaries, not a dozen float64 copies of the frame (13 GB
// at 6000x4000 before). The same sums in another order.
constexpr int64_t kBandRows = 256;

at::Tensor band64(const at::Tensor& t, int64_t row, int64_t rows) {
  return t.narrow(1, row, rows).to(at::kCPU, at::kDouble);
}

}  // namespace

double ssim(const at::Tensor& a, const at::Tensor& b, double data_range, const SsimOptions& o) {
  FACETEX_CHECK_USAGE(a.dim() == 3 && a.sizes() == b.sizes(), "ssim images must be [C, H, W] of one shape, got {} and {}",
                      a.sizes().vec(), b.sizes().vec());
  FACETEX_CHECK_USAGE(o.win_size % 2 == 1 && a.size(1) >= o.win_size && a.size(2) >= o.win_size,
                      "ssim needs an odd window no larger than the image ({}x{}, window {})", a.size(2), a.size(1),
                      o.win_size);
  FACETEX_CHECK_USAGE(data_range > 0, "ssim data_range must be > 0, got {}", data_range);
  const int64_t w = o.win_size;
  const double np = static_cast<double>(w * w);
  const double cov_norm = o.use_sample_covariance ? np / (np - 1) : 1.0;
  // Valid box filter = skimage's uniform_filter followed by crop(S, (w - 1) / 2).
  auto filt = [&](const at::Tensor& x) { return at::avg_pool2d(x.unsqueeze(0), {w, w}, {1, 1}).squeeze(0); };
  const double c1 = std::pow(o.k1 * data_range, 2), c2 = std::pow(o.k2 * data_range, 2);
  const int64_t out_rows = a.size(1) - (w - 1), out_cols = a.size(2) - (w - 1);
  double sum = 0;
  for (int64_t row = 0; row < out_rows; row += kBandRows) {
    const int64_t rows = std::min(kBandRows, out_rows - row) + (w - 1);  // the band and its window overlap
    const at::Tensor x = band64(a, row, rows), y = band64(b, row, rows);
    const at::Tensor ux = filt(x), uy = filt(y);
    const at::Tensor vx = cov_norm * (filt(x * x) - ux * ux), vy = cov_norm * (filt(y * y) - uy * uy);
    const at::Tensor vxy = cov_norm * (filt(x * y) - ux * uy);
    sum += (((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))).sum().item<double>();
  }
  // The mean per channel, then over channels: channels are the same size, so one mean of the whole map.
  return sum / static_cast<double>(a.size(0) * out_rows * out_cols);
}

double psnr(const at::Tensor& truth, const at::Tensor& test, double data_range) {
  FACETEX_CHECK_USAGE(truth.dim() == 3 && truth.sizes() == test.sizes(),
                      "psnr images must be [C, H, W] of one shape, got {} and {}", truth.sizes().vec(),
                      test.sizes().vec());
  double squared = 0;
  for (int64_t row = 0; row < truth.size(1); row += kBandRows) {
    const int64_t rows = std::min(kBandRows, truth.size(1) - row);
    squared += (band64(truth, row, rows) - band64(test, row, rows)).square().sum().item<double>();
  }
  const double mse = squared / static_cast<double>(truth.numel());
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(data_range * data_range / mse);
}

ReconScores masked_recon_metrics(const at::Tensor& target, const at::Tensor& recon, const at::Tensor& mask_in) {
  const at::Tensor t0 = as_chw(target, "target"), r0 = as_chw(recon, "reconstruction");
  FACETEX_CHECK_USAGE(t0.sizes() == r0.sizes() && t0.size(0) == 3, "target and reconstruction must both be [3, H, W]");
  at::Tensor mask = mask_in.to(at::kCPU, at::kDouble);
  if (mask.dim() == 2) mask = mask.unsqueeze(0);
  FACETEX_CHECK_USAGE(mask.dim() == 3 && mask.size(1) == t0.size(1) && mask.size(2) == t0.size(2),
                      "mask must be [H, W], [1, H, W] or [3, H, W] matching the images");
  mask = mask.narrow(0, 0, 1);
  const at::Tensor t = t0 * mask, r = r0 * mask;
  ReconScores s;
  s.data_range = (r.max() - r.min()).item<double>();
  FACETEX_CHECK_DATA(s.data_range > 0, "the masked reconstruction is constant (data_range 0): SSIM/PSNR undefined");
  s.ssim = ssim(t, r, s.data_range);
  s.psnr = psnr(t, r, s.data_range);
  const double msum = mask.sum().item<double>();
  FACETEX_CHECK_DATA(msum > 0, "the mask is empty");
  s.l1 = (t - r).abs().sum().item<double>() / (3.0 * msum);
  return s;
}

at::Tensor cosine_similarity_rows(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.to(at::kCPU, at::kDouble), b.to(at::kCPU, at::kDouble), 1, 1e-8);
}

}  // namespace facetex::train::metrics
