// Reconstruction metrics (masked SSIM / PSNR / L1 of recon_test.py) and FID / KID against hand-computed values
// and numpy references (tests/metrics/make_metric_fixtures.py prints the reference numbers used here), and the
// strided feature gathering.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "data/image_codec.h"
#include "train/metrics/features.h"
#include "train/metrics/fid_kid.h"
#include "train/metrics/recon_eval.h"
#include "train/metrics/recon_metrics.h"
#include "tests/support/fixtures.h"

namespace m = facetex::train::metrics;

namespace {

// The arrays of make_metric_fixtures.py: t = ((7x + 13y + 5c) % 17) / 16, r = ((3x + 5y + 11c) % 19) / 18 * 0.9 +
// 0.05, mask = (x + y) % 4 != 0, on 3 x 11 x 13.
void fixture_images(at::Tensor& t, at::Tensor& r, at::Tensor& mask) {
  const int H = 11, W = 13;
  t = at::empty({3, H, W}, at::kDouble);
  r = at::empty({3, H, W}, at::kDouble);
  mask = at::empty({H, W}, at::kDouble);
  auto ta = t.accessor<double, 3>(), ra = r.accessor<double, 3>();
  auto ma = mask.accessor<double, 2>();
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        ta[c][y][x] = ((x * 7 + y * 13 + c * 5) % 17) / 16.0;
        ra[c][y][x] = ((x * 3 + y * 5 + c * 11) % 19) / 18.0 * 0.9 + 0.05;
        ma[y][x] = ((x + y) % 4) != 0 ? 1.0 : 0.0;
      }
}

// features(n, d, phase, scale)[i, j] = scale * sin(0.37 i (j + 1) + 1.3 j + phase) + 0.1 j (full-rank covariance)
at::Tensor fixture_features(int n, int d, double phase, double scale) {
  at::Tensor f = at::empty({n, d}, at::kDouble);
  auto a = f.accessor<double, 2>();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) a[i][j] = scale * std::sin(i * 0.37 * (j + 1) + j * 1.3 + phase) + 0.1 * j;
  return f;
}

}  // namespace

TEST(ReconMetrics, HandComputedConstantImages) {
  // target 0.25 everywhere; recon 0.75 except one pixel of channel 0 at 0.25; full mask; 7x7 = one SSIM window.
  at::Tensor t = at::full({3, 7, 7}, 0.25, at::kDouble), r = at::full({3, 7, 7}, 0.75, at::kDouble);
  r[0][0][0] = 0.25;
  const m::ReconScores s = m::masked_recon_metrics(t, r, at::ones({7, 7}, at::kDouble));
  EXPECT_DOUBLE_EQ(s.data_range, 0.5);
  EXPECT_NEAR(s.psnr, 10 * std::log10(147.0 / 146.0), 1e-12);  // mse = 146 * 0.25 / 147, range^2 = 0.25
  EXPECT_NEAR(s.l1, 146 * 0.5 / 147.0, 1e-12);
  const double c1 = std::pow(0.01 * 0.5, 2), c2 = std::pow(0.03 * 0.5, 2);
  // Channels 1, 2: both constant, no variance: S = (2 ux uy + C1) / (ux^2 + uy^2 + C1).
  const double s12 = (2 * 0.25 * 0.75 + c1) / (0.25 * 0.25 + 0.75 * 0.75 + c1);
  // Channel 0: uy = (48 * 0.75 + 0.25) / 49, vy = 49/48 (E[y^2] - uy^2), vx = vxy = 0.
  const double uy = (48 * 0.75 + 0.25) / 49, eyy = (48 * 0.5625 + 0.0625) / 49, vy = 49.0 / 48.0 * (eyy - uy * uy);
  const double s0 = (2 * 0.25 * uy + c1) * c2 / ((0.0625 + uy * uy + c1) * (vy + c2));
  EXPECT_NEAR(s.ssim, (s0 + 2 * s12) / 3, 1e-12);
  // Identical images: SSIM 1, PSNR +inf, L1 0.
  const m::ReconScores same = m::masked_recon_metrics(r, r, at::ones({1, 7, 7}, at::kDouble));
  EXPECT_NEAR(same.ssim, 1.0, 1e-12);
  EXPECT_TRUE(std::isinf(same.psnr));
  EXPECT_EQ(same.l1, 0.0);
}

TEST(ReconMetrics, MatchNumpySkimageReference) {
  at::Tensor t, r, mask;
  fixture_images(t, r, mask);
  const m::ReconScores s = m::masked_recon_metrics(t, r, mask);
  // make_metric_fixtures.py: data_range 0.95, ssim 0.4203096456174049, psnr 8.282142358386949, l1 0.34388629283489097
  EXPECT_NEAR(s.data_range, 0.95, 1e-12);
  EXPECT_NEAR(s.ssim, 0.4203096456174049, 1e-12);
  EXPECT_NEAR(s.psnr, 8.282142358386949, 1e-10);
  EXPECT_NEAR(s.l1, 0.34388629283489097, 1e-12);
  EXPECT_NEAR(m::ssim(t, r, 1.0), 0.0152991129217349, 1e-12);  // unmasked, skimage's reflect-padded filter + crop
  // float32 input and a 3-channel mask give the same numbers.
  const m::ReconScores f = m::masked_recon_metrics(t.to(at::kFloat), r.to(at::kFloat), mask.unsqueeze(0).repeat({3, 1, 1}));
  EXPECT_NEAR(f.ssim, s.ssim, 1e-6);
  EXPECT_THROW(m::masked_recon_metrics(t, r, at::zeros({11, 13}, at::kDouble)), facetex::DataError);
  EXPECT_THROW(m::masked_recon_metrics(t, r, at::ones({5, 5}, at::kDouble)), facetex::UsageError);
}

// A bad item stops the job with a message naming its files: an all-zero mask (nothing to compare) and a size
// mismatch.
TEST(ReconMetrics, BadItemsNameTheirFiles) {
  facetex::test::TempDir tmp;
  for (const char* dir : {"pred", "target", "mask"}) std::filesystem::create_directories(tmp / dir);
  const auto png = [](int w, int h, uint8_t value) {
    facetex::data::Image img{h, w, std::vector<uint8_t>(size_t(w) * h * 3, value)};
    return facetex::data::encode_png(img);
  };
  facetex::test::write_bytes(tmp / "pred" / "a.png", png(16, 16, 100));
  facetex::test::write_bytes(tmp / "target" / "a.png", png(16, 16, 120));
  facetex::test::write_bytes(tmp / "mask" / "a.png", png(16, 16, 0));
  const auto error_of = [&] {
    try {
      m::evaluate_recon(m::match_recon_folders(tmp / "pred", tmp / "target", tmp / "mask"), m::ReconEvalOptions{},
                        nullptr);
    } catch (const facetex::DataError& e) {
      return std::string(e.what());
    }
    return std::string("NO ERROR");
  };
  std::string err = error_of();
  EXPECT_NE(err.find((tmp / "pred" / "a.png").string() + " (mask " + (tmp / "mask" / "a.png").string() + "): "),
            std::string::npos)
      << err;
  facetex::test::write_bytes(tmp / "mask" / "a.png", png(8, 8, 255));
  err = error_of();
  EXPECT_NE(err.find("differ in size"), std::string::npos) << err;
  EXPECT_NE(err.find((tmp / "mask" / "a.png").string() + " 8x8"), std::string::npos) << err;
}

TEST(Fid, SelfIsZeroAndShiftIsClosedForm) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  const at::Tensor a = at::randn({500, 16}, gen, at::kDouble) * at::linspace(0.5, 2.0, 16, at::kDouble);
  EXPECT_NEAR(m::fid(a, a), 0.0, 1e-9);
  EXPECT_GE(m::fid(a, a), 0.0);  // a squared distance: rounding never makes it negative ("-0.000000")
  // A shifted copy has the same covariance: FID = |shift|^2 exactly.
  const at::Tensor shift = at::linspace(-1.0, 1.0, 16, at::kDouble);
  EXPECT_NEAR(m::fid(a, a + shift), shift.pow(2).sum().item<double>(), 1e-8);
  // Gaussians with commuting covariances Q diag(p) Q^T, Q diag(q) Q^T: FID = |dmu|^2 + sum (sqrt p - sqrt q)^2.
  const at::Tensor Q = std::get<0>(at::linalg_qr(at::randn({16, 16}, gen, at::kDouble)));
  const at::Tensor p = at::linspace(0.1, 3.0, 16, at::kDouble), q = at::linspace(2.0, 0.5, 16, at::kDouble);
  const at::Tensor c1 = at::matmul(Q * p, Q.t()), c2 = at::matmul(Q * q, Q.t());
  const at::Tensor mu1 = at::zeros({16}, at::kDouble), mu2 = at::full({16}, 0.25, at::kDouble);
  const double closed = 16 * 0.0625 + (p.sqrt() - q.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(m::frechet_distance(mu1, c1, mu2, c2), closed, 1e-9);
  // Samples from two Gaussians: the sample FID approaches the closed form.
  const at::Tensor xa = at::matmul(at::randn({20000, 16}, gen, at::kDouble) * p.sqrt(), Q.t());
  const at::Tensor xb = at::matmul(at::randn({20000, 16}, gen, at::kDouble) * q.sqrt(), Q.t()) + mu2;
  EXPECT_NEAR(m::fid(xa, xb), closed, 0.05 * closed);
}

// One image has no covariance: refused for either set, naming it.
TEST(Fid, NeedsTwoImagesPerSet) {
  const at::Tensor one = at::randn({1, 4}, at::kDouble), many = at::randn({6, 4}, at::kDouble);
  try {
    m::fid(many, one);
    ADD_FAILURE() << "FID of one generated image";
  } catch (const facetex::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("the generated (--fake) set has 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m::fid(one, many), facetex::DataError);
  EXPECT_NO_THROW(m::fid(many, many.flip(0)));
}

TEST(Fid, MatchesNumpyReference) {
  const at::Tensor real = fixture_features(30, 8, 0.0, 1.0), gen = fixture_features(30, 8, 0.5, 1.3);
  EXPECT_NEAR(m::fid(real, gen), 0.37120313011895867, 1e-8);  // make_metric_fixtures.py (eigvals of S1 S2)
}

TEST(Kid, MatchesNumpyReferenceAndIsNearZeroForOneDistribution) {
  const at::Tensor real = fixture_features(30, 8, 0.0, 1.0), gen = fixture_features(30, 8, 0.5, 1.3);
  // Equal set sizes <= max_subset_size: every subset is a permutation of the whole set, so the value is exact.
  m::KidOptions o;
  o.num_subsets = 5;
  EXPECT_NEAR(m::kid(real, gen, o), -0.25080440807867127, 1e-12);
  EXPECT_NEAR(m::kid(real, real, o), -0.22059449681022253, 1e-12);
  // Independent samples of one Gaussian: the unbiased estimate is ~0; a shifted Gaussian is clearly positive.
  at::Generator g = at::detail::createCPUGenerator(5);
  const at::Tensor x = at::randn({1000, 32}, g, at::kDouble), y = at::randn({1000, 32}, g, at::kDouble);
  m::KidOptions s;
  s.num_subsets = 10;
  s.max_subset_size = 500;
  const double same = m::kid(x, y, s), shifted = m::kid(x, y + 0.5, s);
  std::printf("KID same distribution %.6f, shifted by 0.5 %.6f\n", same, shifted);
  EXPECT_LT(std::abs(same), 0.01);
  EXPECT_GT(shifted, 0.1);
  EXPECT_EQ(m::kid(x, y, s), same);  // seeded subsets: reproducible
}

TEST(Features, ImagesOfEverySizeAreReadIntoTensorsThatOwnThem) {
  // A 1x1 photo's tensor once pointed into the freed decode buffer (a permuted 1x1 view counts as contiguous).
  facetex::test::TempDir tmp;
  for (const auto& [name, w, h] : {std::tuple<const char*, int, int>{"a_1x1.png", 1, 1}, {"b_1x3.png", 1, 3},
                                   {"c_3x1.png", 3, 1}, {"d_4x2.png", 4, 2}}) {
    facetex::data::Image im{h, w, {}};
    for (int i = 0; i < w * h * 3; ++i) im.rgb.push_back(static_cast<uint8_t>(10 + 7 * i));
    facetex::test::write_bytes(tmp / name, facetex::data::encode_png(im));
  }
  const m::ImageSource source(tmp.path());
  ASSERT_EQ(source.size(), 4);
  for (int64_t i = 0; i < source.size(); ++i) {
    const at::Tensor t = source.read(i);
    std::vector<at::Tensor> garbage;  // reuse freed memory, as the next decode would
    for (int k = 0; k < 64; ++k) garbage.push_back(at::full({64}, 255, at::kByte));
    ASSERT_EQ(t.dim(), 3);
    EXPECT_TRUE(t.storage().resizable()) << source.describe(i) << ": a view of someone else's memory";
    const int64_t h = t.size(1), w = t.size(2);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t c = 0; c < 3; ++c)
          EXPECT_EQ(t[c][y][x].item<int>(), 10 + 7 * ((y * w + x) * 3 + c)) << source.describe(i);
  }
}

TEST(Features, StridedGatherWithoutCommunicatorIsIdentity) {
  const at::Tensor f = fixture_features(7, 3, 0.0, 1.0);
  EXPECT_TRUE(at::equal(m::allgather_strided_rows(f, 7, nullptr), f));
}

// The Inception path with a stand-in TorchScript file of the same interface as NVIDIA's inception-2015-12-05.pt
// (forward(img uint8 [B, 3, H, W], return_features: bool) -> [B, 2048] features, else logits), scripted by
// Debian's python3-torch: features = mean RGB (0..255) @ W, W[c, k] = (c * 2048 + k) / 1000.
TEST(Features, InceptionTorchScriptInterface) {
  const std::string python = "/usr/bin/python3";
  if (facetex::test::run_command(python + " -c 'import torch'").exit_code != 0) GTEST_SKIP() << "no python3-torch";
  facetex::test::TempDir tmp;
  const std::string script = R"(
import sys, torch
class Stub(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.arange(3 * 2048, dtype=torch.float32).reshape(3, 2048) / 1000
    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert img.dtype == torch.uint8
        f = img.to(torch.float32).mean(dim=[2, 3]) @ self.w
        if return_features:
            return f
        return f[:, :1008]
torch.jit.script(Stub()).save(sys.argv[1])
)";
  facetex::test::write_bytes(tmp / "make.py", script);
  const auto r = facetex::test::run_command(python + " " + (tmp / "make.py").string() + " " + (tmp / "inc.pt").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ex = m::make_inception_extractor(tmp / "inc.pt", c10::Device("cpu"));
  EXPECT_EQ(ex->fid_label(), "FID");
  EXPECT_EQ(ex->kid_label(), "KID");
  at::Generator g = at::detail::createCPUGenerator(9);
  const at::Tensor img = at::randint(0, 256, {4, 3, 20, 24}, g, at::kByte);
  const at::Tensor w = at::arange(3 * 2048, at::kFloat).view({3, 2048}) / 1000;
  const at::Tensor expect = at::matmul(img.to(at::kFloat).mean({2, 3}), w).to(at::kDouble);
  const at::Tensor f = ex->features(img);
  ASSERT_EQ(f.sizes().vec(), (std::vector<int64_t>{4, 2048}));
  EXPECT_TRUE(at::allclose(f, expect, 1e-5, 1e-3));
  EXPECT_THROW(m::make_inception_extractor(tmp / "missing.pt", c10::Device("cpu")), facetex::DataError);
  facetex::test::write_bytes(tmp / "junk.pt", "not a zip");
  EXPECT_THROW(m::make_inception_extractor(tmp / "junk.pt", c10::Device("cpu")), facetex::DataError);
}
