#include "train/metrics/fid_kid.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "core/error.h"

namespace facetex::train::metrics {
namespace {

at::Tensor rows64(const at::Tensor& f, const char* what) {
  FACETEX_CHECK_USAGE(f.dim() == 2, "{} features must be [N, D], got {} dimensions", what, f.dim());
  return f.to(at::kCPU, at::kDouble).contiguous();
}

// Symmetric PSD square root by eigen-decomposition (negative rounding eigenvalues clamped to 0).
at::Tensor sqrt_psd(const at::Tensor& s) {
  auto [evals, evecs] = at::linalg_eigh(0.5 * (s + s.t()));
  return at::matmul(evecs * evals.clamp_min(0).sqrt().unsqueeze(0), evecs.t());
}

}  // namespace

FeatureMoments feature_moments(const at::Tensor& features) {
  const at::Tensor x = rows64(features, "moment");
  FACETEX_CHECK_DATA(x.size(0) > 0, "no features to take moments of");
  FeatureMoments m;
  m.count = x.size(0);
  m.mean = x.mean(0);
  m.cov = at::matmul(x.t(), x) / static_cast<double>(m.count) - at::outer(m.mean, m.mean);
  return m;
}

double frechet_distance(const at::Tensor& mu1_in, const at::Tensor& cov1_in, const at::Tensor& mu2_in,
                        const at::Tensor& cov2_in) {
  const at::Tensor mu1 = mu1_in.to(at::kCPU, at::kDouble), mu2 = mu2_in.to(at::kCPU, at::kDouble);
  const at::Tensor c1 = cov1_in.to(at::kCPU, at::kDouble), c2 = cov2_in.to(at::kCPU, at::kDouble);
  FACETEX_CHECK_USAGE(mu1.dim() == 1 && mu1.sizes() == mu2.sizes() && c1.dim() == 2 && c1.sizes() == c2.sizes() &&
                          c1.size(0) == mu1.size(0) && c1.size(1) == mu1.size(0),
                      "Fréchet distance needs means [D] and covariances [D, D] of one D");
  const double m = (mu1 - mu2).pow(2).sum().item<double>();
  const at::Tensor r = sqrt_psd(c2);
  const at::Tensor a = at::matmul(at::matmul(r, c1), r);
  const double tr_sqrt = at::linalg_eigvalsh(0.5 * (a + a.t())).clamp_min(0).sqrt().sum().item<double>();
  // A squared distance: below 0 only by rounding (identical sets give about -1e-13, printed "-0.000000").
  return std::max(0.0, m + (c1.trace() + c2.trace()).item<double>() - 2.0 * tr_sqrt);
}

double fid(const at::Tensor& real_features, const at::Tensor& gen_features) {
  // One image has no spread: its covariance is 0 and FID degenerates to a squared mean distance.
  for (const auto& [set, f] : {std::pair<const char*, const at::Tensor*>{"real (--real)", &real_features},
                               std::pair<const char*, const at::Tensor*>{"generated (--fake)", &gen_features}}) {
    FACETEX_CHECK_DATA(f->dim() == 2 && f->size(0) >= 2, "FID needs at least 2 images per set; the {} set has {}",
                       set, f->dim() == 2 ? f->size(0) : 0);
  }
  const FeatureMoments r = feature_moments(real_features), g = feature_moments(gen_features);
  FACETEX_CHECK_USAGE(r.mean.size(0) == g.mean.size(0), "real and generated features differ in dimension ({} vs {})",
                      r.mean.size(0), g.mean.size(0));
  return frechet_distance(g.mean, g.cov, r.mean, r.cov);
}

double kid(const at::Tensor& real_features, const at::Tensor& gen_features, const KidOptions& o) {
  const at::Tensor real = rows64(real_features, "real"), gen = rows64(gen_features, "generated");
  FACETEX_CHECK_USAGE(real.size(1) == gen.size(1), "real and generated features differ in dimension ({} vs {})",
                      real.size(1), gen.size(1));
  FACETEX_CHECK_USAGE(o.num_subsets > 0 && o.max_subset_size > 1, "KID needs subsets > 0 and subset size > 1");
  const double n = static_cast<double>(real.size(1));
  const int64_t m = std::min(std::min(real.size(0), gen.size(0)), o.max_subset_size);
  FACETEX_CHECK_DATA(m >= 2, "KID needs at least 2 images per set; the real (--real) set has {}, the generated "
                     "(--fake) set has {}", real.size(0), gen.size(0));
  std::mt19937_64 rng(o.seed);
  auto choose = [&](int64_t total) {
    // np.random.choice(total, m, replace=False): a partial Fisher-Yates shuffle.
    std::vector<int64_t> idx(total);
    std::iota(idx.begin(), idx.end(), 0);
    for (int64_t i = 0; i < m; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, total - 1);
      std::swap(idx[i], idx[pick(rng)]);
    }
    idx.resize(m);
    return at::tensor(idx, at::kLong);
  };
  auto kernel = [&](const at::Tensor& x, const at::Tensor& y) { return (at::matmul(x, y.t()) / n + 1).pow(3); };
  double t = 0;
  for (int s = 0; s < o.num_subsets; ++s) {
    const at::Tensor x = gen.index_select(0, choose(gen.size(0)));
    const at::Tensor y = real.index_select(0, choose(real.size(0)));
    const at::Tensor a = kernel(x, x) + kernel(y, y);
    const at::Tensor b = kernel(x, y);
    t += (a.sum() - a.diagonal().sum()).item<double>() / static_cast<double>(m - 1) -
         b.sum().item<double>() * 2.0 / static_cast<double>(m);
  }
  return t / o.num_subsets / static_cast<double>(m);
}

}  // namespace facetex::train::metrics
