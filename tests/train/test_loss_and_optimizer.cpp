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

// Gradients accumulated in the module vs <prefix>/<name>; relative L2 per the parity README (§4).
void expect_grads(torch::nn::Module& m, hid_t outputs, const std::string& prefix, double tol) {
  h5::Id g = h5::open_group(outputs, prefix);
  int checked = 0;
  for (auto& p : m.named_parameters(true)) {
    if (!h5::exists(g, p.key())) continue;
    at::Tensor ref = test::read_tensor(g, p.key()).to(at::kDouble);
    at::Tensor ours = p.value().grad().defined() ? p.value().grad().to(at::kDouble) : at::zeros_like(ref);
    const double norm = ref.norm().item<double>(), err = (ours - ref).norm().item<double>();
    if (norm == 0) {
      EXPECT_EQ(err, 0.0) << prefix << " " << p.key();
    } else {
      EXPECT_LE(err, tol * norm) << prefix << " " << p.key() << " rel " << err / norm;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << prefix;
}

}  // namespace

TEST(StyleGAN2LossParity, EveryPhaseMatchesTheReferenceLossTerms) {
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
  const at::Tensor z = test::read_tensor(in, "z"), real = test::read_tensor(in, "real_img");

  const struct {
    Phase phase;
    bool g;
    const char* prefix;
    double tol;
  } cases[] = {{Phase::kGmain, true, "grad_Gmain/G", 1e-2},
               {Phase::kGreg, true, "grad_Gpl/G", 2e-3},
               {Phase::kDmain, false, "grad_Dmain/D", 1e-2},
               {Phase::kDreg, false, "grad_Dr1/D", 1e-2}};
  for (const auto& c : cases) {
    SCOPED_TRACE(phase_name(c.phase));
    Nets n = parity_nets(group);
    n.G->train();
    n.D->train();
    TrainingStats stats;
    ImagePipeline pipeline;
    StyleGAN2Loss loss(*n.G, *n.D, nullptr, pipeline, lo, stats);
    loss.pl_noise_override = test::read_tensor(in, "pl_noise");
    set_requires_grad(*n.G, c.g);
    set_requires_grad(*n.D, !c.g);
    loss.accumulate_gradients(c.phase, real, z, BatchContext{}, /*gain=*/1.0);
    expect_grads(c.g ? static_cast<torch::nn::Module&>(*n.G) : *n.D, out, c.prefix, c.tol);
    if (c.phase == Phase::kGreg) {
      EXPECT_NEAR(loss.pl_mean.item<double>(), test::read_tensor(out, "pl_mean").item<double>(), 1e-6);
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
