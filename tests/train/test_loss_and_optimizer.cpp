// The training objective and optimiser: StyleGAN2Loss phase by phase against the reference's loss_terms vectors,
// Adam against torch.optim.Adam's formula with lazy-regularisation scaling, NaN/Inf neutralisation, and which
// parameters one Gmain/Greg/Dmain/Dreg cycle may change.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <set>

#include "core/h5.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"
#include "train/adam.h"
#include "train/generator_pipeline.h"
#include "train/loss.h"
#include "train/training_stats.h"

using namespace facetex;
using namespace facetex::train;
using namespace facetex::models::stylegan2;

namespace {

struct Nets {
  std::shared_ptr<Generator> G;
  std::shared_ptr<Discriminator> D;
};

Nets parity_nets(hid_t group) {
  const auto kwargs = nlohmann::json::parse(h5::read_attr_string(group, "init_kwargs"));
  Nets n{std::make_shared<Generator>(parse_generator_config(kwargs.at("G").dump(), "G")),
         std::make_shared<Discriminator>(parse_discriminator_config(kwargs.at("D").dump(), "D"))};
  h5::Id pg = h5::open_group(group, "params/G"), pd = h5::open_group(group, "params/D");
  models::load_network(*n.G, models::read_network_group(pg, "G"), "G");
  models::load_network(*n.D, models::read_network_group(pd, "D"), "D");
  return n;
}

// Gradients accumulated in the module vs <prefix>/<name> (test::compare_gradient_set: a float32 module as one
// set within `tol`, a float64 one tensor by tensor within the reference's own float32 rounding).
void expect_grads(torch::nn::Module& m, hid_t outputs, const std::string& prefix, at::ScalarType precision,
                  double tol) {
  h5::Id g = h5::open_group(outputs, prefix);
  std::vector<std::pair<std::string, at::Tensor>> ours;
  for (auto& p : m.named_parameters(true)) ours.emplace_back(p.key(), p.value().grad());
  const test::GradientSetCheck r = test::compare_gradient_set(g, ours, precision, tol);
  EXPECT_GT(r.tensors, 0) << prefix;
  EXPECT_LE(r.set_rel_l2, tol) << prefix << ": relative L2 error over the set " << r.set_rel_l2 << " (worst tensor "
                               << r.worst << " " << r.worst_rel_l2 << ")";
  for (const std::string& f : r.failures) ADD_FAILURE() << prefix << " " << f;
}

}  // namespace

// The production loss (train/loss.cpp) phase by phase, with the networks in float32 and again in float64. float32
// gradients are judged as sets within 1e-2 (README §4), grad_Gpl too: the README's 2e-3 for it is meant to see a
// detached pl_mean (0.7-1.3%), but one kink that float32 rounding flips put a generated set's grad_Gpl 4.3e-3 away.
// The float64 run sees it instead: tensor by tensor within the reference's own float32 rounding.
class StyleGAN2LossParity : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(StyleGAN2LossParity, EveryPhaseMatchesTheReferenceLossTerms) {
  const at::ScalarType dtype = GetParam();
  h5::Id file = h5::open_file(test::parity_file_path());
  if (!h5::exists(file, "loss_terms")) GTEST_SKIP() << "no loss_terms group";
  h5::Id group = h5::open_group(file, "loss_terms");
  h5::Id in = h5::open_group(group, "inputs"), out = h5::open_group(group, "outputs");
  const auto loss_kwargs = nlohmann::json::parse(h5::read_attr_string(group, "init_kwargs")).at("loss");
  LossOptions lo;
  lo.r1_gamma = loss_kwargs.at("r1_gamma").get<double>();
  lo.pl_batch_shrink = loss_kwargs.at("pl_batch_shrink").get<int64_t>();
  lo.pl_decay = loss_kwargs.at("pl_decay").get<double>();
  lo.pl_weight = loss_kwargs.at("pl_weight").get<double>();
  lo.style_mixing = loss_kwargs.at("style_mixing_prob").get<double>();
  lo.noise = NoiseMode::kConst;
  const at::Tensor z = test::read_tensor(in, "z").to(dtype), real = test::read_tensor(in, "real_img").to(dtype);

  const struct {
    Phase phase;
    bool g;
    const char* prefix;
  } cases[] = {{Phase::kGmain, true, "grad_Gmain/G"},
               {Phase::kGreg, true, "grad_Gpl/G"},
               {Phase::kDmain, false, "grad_Dmain/D"},
               {Phase::kDreg, false, "grad_Dr1/D"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(phase_name(c.phase));
    Nets n = parity_nets(group);
    n.G->to(dtype);
    n.D->to(dtype);
    n.G->train();
    n.D->train();
    TrainingStats stats;
    ImagePipeline pipeline;
    StyleGAN2Loss loss(*n.G, *n.D, nullptr, pipeline, lo, stats);
    loss.pl_noise_override = test::read_tensor(in, "pl_noise").to(dtype);
    loss.pl_mean = loss.pl_mean.to(dtype);
    set_requires_grad(*n.G, c.g);
    set_requires_grad(*n.D, !c.g);
    loss.accumulate_gradients(c.phase, real, z, BatchContext{}, /*gain=*/1.0);
    expect_grads(c.g ? static_cast<torch::nn::Module&>(*n.G) : *n.D, out, c.prefix, dtype, 1e-2);
    if (c.phase == Phase::kGreg) {
      // 0.01 x the mean path length, a function of a gradient: float32 within 1e-2 of it (as pl_grads), float64
      // within 1e-9 of the reference's float64 replay.
      const bool f64 = dtype == at::kDouble;
      const double ref = test::read_tensor(group, f64 ? "outputs_f64/pl_mean" : "outputs/pl_mean").item<double>();
      EXPECT_NEAR(loss.pl_mean.item<double>(), ref, (f64 ? 1e-9 : 1e-2) * std::abs(ref));
    }
    // The reported statistics are the reference's names.
    const auto& pending = stats.pending();
    if (c.phase == Phase::kGmain) {
      EXPECT_TRUE(pending.count("Loss/G/loss") && pending.count("Loss/signs/fake"));
    }
    if (c.phase == Phase::kDreg) {
      EXPECT_TRUE(pending.count("Loss/r1_penalty") && pending.count("Loss/D/reg"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Precision, StyleGAN2LossParity, ::testing::Values(at::kFloat, at::kDouble),
                         [](const ::testing::TestParamInfo<at::ScalarType>& info) {
                           return std::string(info.param == at::kDouble ? "f64" : "f32");
                         });

TEST(Adam, FollowsTorchAdamAndTheLazyRegularisationScaling) {
  // spec §4.4: G (interval 4): lr 0.0016, beta2 0.99^0.8; D (interval 16): lr 0.002*16/17, beta2 0.99^(16/17).
  const AdamOptions g = AdamOptions::lazy(0.002, 0.0, 0.99, 1e-8, 4), d = AdamOptions::lazy(0.002, 0.0, 0.99, 1e-8, 16);
  EXPECT_NEAR(g.lr, 0.0016, 1e-12);
  EXPECT_NEAR(g.beta2, 0.991992, 1e-6);
  EXPECT_NEAR(d.lr, 0.0018824, 1e-7);
  EXPECT_NEAR(d.beta2, 0.990585, 1e-6);
  at::Tensor p = at::tensor({1.0, -2.0, 0.5}, at::kDouble).set_requires_grad(true);
  Adam opt({{"p", p}}, AdamOptions{0.01, 0.9, 0.999, 1e-8});
  std::vector<double> ref = {1.0, -2.0, 0.5}, m(3, 0), v(3, 0);
  for (int step = 1; step <= 5; ++step) {
    const std::vector<double> grad = {0.3 * step, -1.0, 0.05 / step};
    p.mutable_grad() = at::tensor(grad, at::kDouble);
    opt.step();
    for (int i = 0; i < 3; ++i) {  // torch.optim.Adam, single-tensor path
      m[i] = 0.9 * m[i] + 0.1 * grad[i];
      v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
      const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, step)) + 1e-8;
      ref[i] -= 0.01 / (1 - std::pow(0.9, step)) * m[i] / denom;
      EXPECT_NEAR(p[i].item<double>(), ref[i], 1e-12) << "step " << step;
    }
  }
  EXPECT_EQ(opt.state()[0].step, 5);
}

TEST(Adam, NonFiniteGradientsAreNeutralisedAndCounted) {
  at::Tensor p = at::zeros({5}).set_requires_grad(true);
  Adam opt({{"p", p}}, AdamOptions{});
  p.mutable_grad() = at::tensor({1.0f, NAN, INFINITY, -INFINITY, 2.0f});
  opt.sanitize_gradients();
  EXPECT_TRUE(at::equal(p.grad(), at::tensor({1.0f, 0.0f, 1e5f, -1e5f, 2.0f})));
  EXPECT_EQ(opt.take_nonfinite_count(), 3);
  EXPECT_EQ(opt.take_nonfinite_count(), 0) << "taking the count resets it";
  p.mutable_grad() = at::tensor({NAN, 1.0f, 1.0f, 1.0f, 1.0f});
  opt.sanitize_gradients();
  opt.sanitize_gradients();  // the second pass finds nothing left to replace
  p.mutable_grad() = at::tensor({INFINITY, NAN, 1.0f, 1.0f, 1.0f});
  opt.sanitize_gradients();
  EXPECT_EQ(opt.take_nonfinite_count(), 3) << "counts add up across calls until taken";
  opt.step();
  EXPECT_TRUE(at::isfinite(p).all().item<bool>());
}

TEST(TrainingStats, TensorReportsStayOnTheirDeviceUntilReadAndDropNonFiniteValues) {
  TrainingStats stats;
  stats.report("a", at::tensor({1.0f, 2.0f, NAN, 4.0f}));
  stats.report("a", at::tensor({-3.0f, INFINITY}));
  stats.report("a", 5.0);
  stats.report("b", at::tensor({0.5}, at::kDouble));
  EXPECT_EQ(stats.names(), (std::vector<std::string>{"a", "b"})) << "names are known before the moments are read";
  // flatten() reads what is still on the device: [count, sum, sum_sq] per name in name order.
  const std::vector<double> flat = stats.flatten();
  EXPECT_EQ(flat, (std::vector<double>{5, 9, 55, 1, 0.5, 0.25}));
  stats.report("b", at::tensor({1.5}, at::kDouble));
  const auto& pending = stats.pending();
  EXPECT_EQ(pending.at("b").count, 2.0);
  EXPECT_EQ(pending.at("b").sum, 2.0);
  // restore() replaces everything, device-side moments included.
  stats.report("a", at::tensor({100.0f}));
  stats.restore({"a"}, {1, 2, 4});
  const auto collected = stats.collect();
  ASSERT_EQ(collected.size(), 1u);
  EXPECT_EQ(collected.at("a").sum, 2.0);
  EXPECT_TRUE(stats.pending().empty());
}

TEST(PhaseCycle, EachPhaseChangesExactlyTheParametersItShould) {
  h5::Id file = h5::open_file(test::parity_file_path());
  if (!h5::exists(file, "loss_terms")) GTEST_SKIP() << "no loss_terms group";
  h5::Id group = h5::open_group(file, "loss_terms");
  h5::Id in = h5::open_group(group, "inputs");
  const at::Tensor z = test::read_tensor(in, "z"), real = test::read_tensor(in, "real_img");
  auto snapshot = [](torch::nn::Module& m) {
    std::map<std::string, at::Tensor> s;
    for (auto& p : m.named_parameters(true)) s[p.key()] = p.value().detach().clone();
    return s;
  };
  auto changed = [](torch::nn::Module& m, const std::map<std::string, at::Tensor>& before) {
    std::set<std::string> out;
    for (auto& p : m.named_parameters(true)) {
      if (!at::equal(p.value(), before.at(p.key()))) out.insert(p.key());
    }
    return out;
  };
  for (Phase phase : {Phase::kGmain, Phase::kGreg, Phase::kDmain, Phase::kDreg}) {
    SCOPED_TRACE(phase_name(phase));
    Nets n = parity_nets(group);
    n.G->train();
    n.D->train();
    TrainingStats stats;
    ImagePipeline pipeline;
    LossOptions lo;
    lo.style_mixing = 0;
    lo.noise = NoiseMode::kConst;
    StyleGAN2Loss loss(*n.G, *n.D, nullptr, pipeline, lo, stats);
    const bool g = phase == Phase::kGmain || phase == Phase::kGreg;
    torch::nn::Module& module = g ? static_cast<torch::nn::Module&>(*n.G) : *n.D;
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (auto& p : module.named_parameters(true)) params.emplace_back(p.key(), p.value());
    Adam opt(params, AdamOptions{});
    const auto g_before = snapshot(*n.G), d_before = snapshot(*n.D);
    set_requires_grad(*n.G, false);
    set_requires_grad(*n.D, false);
    set_requires_grad(module, true);
    loss.accumulate_gradients(phase, real, z, BatchContext{}, 1.0);
    set_requires_grad(module, false);
    opt.step();
    const auto g_changed = changed(*n.G, g_before), d_changed = changed(*n.D, d_before);
    if (g) {
      EXPECT_TRUE(d_changed.empty()) << "a G phase changed D";
      EXPECT_GT(g_changed.size(), 40u);
      if (phase == Phase::kGreg) {
        // Path length differentiates the texture w.r.t. ws: the ToRGB biases do not influence that gradient.
        for (const auto& name : g_changed) EXPECT_EQ(name.find("torgb.bias"), std::string::npos) << name;
      }
    } else {
      EXPECT_TRUE(g_changed.empty()) << "a D phase changed G";
      EXPECT_GT(d_changed.size(), 15u);
      if (phase == Phase::kDreg) {
        // R1: biases past the last smooth nonlinearity do not change the input gradient (parity README §3.9).
        for (const char* name : {"b4.conv.bias", "b4.fc.bias", "b4.out.bias"}) EXPECT_FALSE(d_changed.count(name)) << name;
      }
    }
  }
}
