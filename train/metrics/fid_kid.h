// FID and KID on feature rows, as StyleGAN2-ADA's metrics compute them (metrics/frechet_inception_distance.py,
// metrics/kernel_inception_distance.py, metrics/metric_utils.py FeatureStats):
//   FID = |mu_g - mu_r|^2 + Tr(S_g + S_r - 2 sqrtm(S_g S_r)), mean and covariance accumulated in float64 with the
//         biased covariance (raw_cov / n - mu mu^T). Tr sqrtm(S_g S_r) is computed as Tr sqrt(A) with the symmetric
//         PSD A = sqrt(S_r) S_g sqrt(S_r) (same eigenvalues as S_g S_r), by two symmetric eigen-decompositions in
//         float64 (tiny negative eigenvalues from rounding are clamped to 0) — scipy's sqrtm is not needed.
//   KID = unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets of
//         m = min(n_real, n_gen, max_subset_size) rows of each set (drawn without replacement):
//           t += (sum(a) - tr(a)) / (m - 1) - 2 sum(b) / m,  a = k(x,x) + k(y,y), b = k(x,y);  KID = t / subsets / m
// The features are whatever extractor produced them (Inception pool3 2048-D, or dlib's 128-D descriptors as the
// offline stand-in: label such numbers FID_dlib / KID_dlib).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace facetex::train::metrics {

struct FeatureMoments {
  at::Tensor mean;  // [D] float64
  at::Tensor cov;   // [D, D] float64 (biased: divided by n)
  int64_t count = 0;
};
FeatureMoments feature_moments(const at::Tensor& features);  // [N, D]

double frechet_distance(const at::Tensor& mu1, const at::Tensor& cov1, const at::Tensor& mu2, const at::Tensor& cov2);
double fid(const at::Tensor& real_features, const at::Tensor& gen_features);

struct KidOptions {
  int num_subsets = 100;
  int64_t max_subset_size = 1000;
  uint64_t seed = 0;  // subsets drawn with a seeded std::mt19937_64 (numbers reproducible run to run)
};
double kid(const at::Tensor& real_features, const at::Tensor& gen_features, const KidOptions& options = {});

}  // namespace facetex::train::metrics
