// Reconstruction metrics of the paper's recon_test.py (paper-system-spec.md §9.1), on masked crops:
//   t = target * mask, r = recon * mask, data_range = r.max() - r.min() (the masked reconstruction's range)
//   SSIM: skimage.metrics.structural_similarity(t, r, multichannel=True, data_range) — 7x7 uniform window, K1 0.01,
//         K2 0.03, sample covariance (49/48), the map cropped by 3 px on every side, mean per channel then over
//         channels (skimage filters with mode 'reflect', but the cropped mean only sees windows inside the image,
//         so a valid 7x7 box filter gives the same number)
//   PSNR: 10 log10(data_range^2 / mean((t - r)^2)) over all pixels and channels (+inf for identical images)
//   L1  : sum |t - r| / (3 * sum mask)
// Images are [3, H, W] (or [H, W, 3] with hwc = true) floating point in [0, 1]; the mask is [H, W], [1, H, W] or
// [3, H, W] (a 3-channel mask uses its first channel). All arithmetic in float64 on the CPU.
#pragma once

#include <ATen/core/Tensor.h>

namespace facetex::train::metrics {

struct SsimOptions {
  int win_size = 7;
  double k1 = 0.01, k2 = 0.03;
  bool use_sample_covariance = true;
};

// skimage's structural_similarity on [C, H, W] images (mean over channels), data_range given. H, W >= win_size.
double ssim(const at::Tensor& a, const at::Tensor& b, double data_range, const SsimOptions& options = {});
// skimage's peak_signal_noise_ratio.
double psnr(const at::Tensor& truth, const at::Tensor& test, double data_range);

struct ReconScores {
  double ssim = 0, psnr = 0, l1 = 0;
  double data_range = 0;
};
// The three masked metrics as recon_test.py computes them (see above). target, recon: [3, H, W] in [0, 1].
ReconScores masked_recon_metrics(const at::Tensor& target, const at::Tensor& recon, const at::Tensor& mask);

// Cosine similarity of feature rows (eps 1e-8 as torch.nn.functional.cosine_similarity): [N, D] x [N, D] -> [N].
at::Tensor cosine_similarity_rows(const at::Tensor& a, const at::Tensor& b);

}  // namespace facetex::train::metrics
