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

}  // namespace

double ssim(const at::Tensor& a_in, const at::Tensor& b_in, double data_range, const SsimOptions& o) {
  const at::Tensor a = as_chw(a_in, "ssim image"), b = as_chw(b_in, "ssim image");
  FACETEX_CHECK_USAGE(a.sizes() == b.sizes(), "ssim images differ in shape");
  FACETEX_CHECK_USAGE(o.win_size % 2 == 1 && a.size(1) >= o.win_size && a.size(2) >= o.win_size,
                      "ssim needs an odd window no larger than the image ({}x{}, window {})", a.size(2), a.size(1),
                      o.win_size);
  FACETEX_CHECK_USAGE(data_range > 0, "ssim data_range must be > 0, got {}", data_range);
  const int64_t w = o.win_size;
  const double np = static_cast<double>(w * w);
  const double cov_norm = o.use_sample_covariance ? np / (np - 1) : 1.0;
  // Valid box filter = skimage's uniform_filter followed by crop(S, (w - 1) / 2).
  auto filt = [&](const at::Tensor& x) { return at::avg_pool2d(x.unsqueeze(0), {w, w}, {1, 1}).squeeze(0); };
  const at::Tensor ux = filt(a), uy = filt(b);
  const at::Tensor uxx = filt(a * a), uyy = filt(b * b), uxy = filt(a * b);
  const at::Tensor vx = cov_norm * (uxx - ux * ux), vy = cov_norm * (uyy - uy * uy), vxy = cov_norm * (uxy - ux * uy);
  const double c1 = std::pow(o.k1 * data_range, 2), c2 = std::pow(o.k2 * data_range, 2);
  const at::Tensor s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  return s.mean({1, 2}).mean().item<double>();  // per channel, then over channels
}

double psnr(const at::Tensor& truth, const at::Tensor& test, double data_range) {
  const at::Tensor t = truth.to(at::kCPU, at::kDouble), r = test.to(at::kCPU, at::kDouble);
  FACETEX_CHECK_USAGE(t.sizes() == r.sizes(), "psnr images differ in shape");
  const double mse = (t - r).pow(2).mean().item<double>();
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
