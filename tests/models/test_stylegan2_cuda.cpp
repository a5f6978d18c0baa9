// On a GPU: facetex's StyleGAN2 G and D agree between the CUDA kernels and the ATen reference ops (forward,
// backward, and the double backward of R1 and path-length regularisation), and between CUDA and the CPU.
// Skips cleanly without a CUDA device. Run with NVIDIA_TF32_OVERRIDE=0 so cuDNN/cuBLAS use full FP32, as the
// reference numerics (TF32 off) require.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdio>

#include "kernels/dispatch.h"
#include "kernels/image_normalize.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"

using namespace facetex;
using namespace facetex::models::stylegan2;

namespace {

struct Result {
  at::Tensor img, logits;
  std::vector<at::Tensor> grads;  // G parameters, then D parameters
};

GeneratorConfig small_generator(bool fp16) {
  GeneratorConfig g;
  g.z_dim = g.w_dim = 64;
  g.img_resolution = 64;
  g.mapping.num_layers = 2;
  g.synthesis.channel_base = 2048;
  g.synthesis.channel_max = 64;
  if (fp16) {
    g.synthesis.num_fp16_res = 2;
    g.synthesis.conv_clamp = 256;
  }
  g.synthesis.w_dim = g.w_dim;
  g.synthesis.img_resolution = 64;
  g.mapping.z_dim = g.z_dim;
  g.mapping.w_dim = g.w_dim;
  return g;
}

DiscriminatorConfig small_discriminator(bool fp16) {
  DiscriminatorConfig d;
  d.img_resolution = 64;
  d.channel_base = 2048;
  d.channel_max = 64;
  if (fp16) {
    d.num_fp16_res = 2;
    d.conv_clamp = 256;
  }
  return d;
}

// Gmain + path length on G; Dmain + R1 on D: every kind of derivative training needs.
Result run(Generator& G, Discriminator& D, const at::Tensor& z, const at::Tensor& real, kernels::Impl impl) {
  kernels::set_default_impl(impl);
  G.zero_grad();
  D.zero_grad();
  SynthesisOptions o;
  o.noise_mode = NoiseMode::kConst;
  Result r;
  at::Tensor ws = G.mapping->forward(z);
  r.img = G.synthesis->forward(ws, o);
  r.logits = D.forward(r.img);
  at::Tensor pl_noise = at::ones_like(r.img) / 64.0;
  at::Tensor pl_grads = torch::autograd::grad({(r.img * pl_noise).sum()}, {ws}, {}, true, true)[0];
  at::Tensor loss_g = at::softplus(-r.logits).mean() + pl_grads.square().sum(2).mean(1).sqrt().mean();
  at::Tensor real_in = real.clone().set_requires_grad(true);
  at::Tensor real_logits = D.forward(real_in);
  at::Tensor r1 = torch::autograd::grad({real_logits.sum()}, {real_in}, {}, true, true)[0];
  at::Tensor loss_d = at::softplus(-real_logits).mean() + r1.square().sum({1, 2, 3}).mean();
  (loss_g + loss_d).backward();
  for (auto& p : G.parameters()) r.grads.push_back(p.grad().defined() ? p.grad().cpu().to(at::kDouble) : at::Tensor());
  for (auto& p : D.parameters()) r.grads.push_back(p.grad().defined() ? p.grad().cpu().to(at::kDouble) : at::Tensor());
  kernels::set_default_impl(kernels::Impl::kAuto);
  return r;
}

double norm_max(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.detach().cpu().to(at::kDouble), y = b.detach().cpu().to(at::kDouble);
  return (x - y).abs().max().item<double>() / std::max(y.abs().max().item<double>(), 1e-30);
}

double worst_grad(const Result& a, const Result& b) {
  double worst = 0;
  for (size_t i = 0; i < a.grads.size(); ++i) {
    if (!a.grads[i].defined() || !b.grads[i].defined()) continue;
    const double n = b.grads[i].norm().item<double>();
    if (n > 0) worst = std::max(worst, (a.grads[i] - b.grads[i]).norm().item<double>() / n);
  }
  return worst;
}

void compare(const char* what, const Result& a, const Result& b, double value_tol, double grad_tol) {
  const double img = norm_max(a.img, b.img), logits = norm_max(a.logits, b.logits), grads = worst_grad(a, b);
  std::fprintf(stderr, "[cuda] %-44s img %.2e  logits %.2e  worst grad rel L2 %.2e\n", what, img, logits, grads);
  EXPECT_LE(img, value_tol) << what;
  EXPECT_LE(logits, value_tol) << what;
  EXPECT_LE(grads, grad_tol) << what;
}

}  // namespace

TEST(StyleGAN2Cuda, CudaKernelsAgreeWithTheAtenReferenceAndWithTheCpu) {
  if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  for (bool fp16 : {false, true}) {
    at::manual_seed(7);
    Generator G(small_generator(fp16));
    Discriminator D(small_discriminator(fp16));
    G.train();
    D.train();
    at::Tensor z = at::randn({4, 64}), real = at::rand({4, 3, 64, 64}) * 2 - 1;
    Result cpu;
    if (!fp16) cpu = run(G, D, z, real, kernels::Impl::kReference);
    G.to(at::kCUDA);
    D.to(at::kCUDA);
    Result ref = run(G, D, z.cuda(), real.cuda(), kernels::Impl::kReference);
    Result fast = run(G, D, z.cuda(), real.cuda(), kernels::Impl::kAuto);
    if (!fp16) {
      compare("fp32: CUDA kernels vs ATen reference (GPU)", fast, ref, 1e-4, 1e-3);
      compare("fp32: GPU (CUDA kernels) vs CPU", fast, cpu, 1e-4, 1e-3);
    } else {
      // FP16 blocks round differently in every op order; the agreement is at half-precision level.
      compare("fp16 blocks: CUDA kernels vs ATen reference", fast, ref, 2e-2, 5e-2);
    }
  }
}

// fp16_channels_last (the reference's --nhwc): the FP16 blocks run NHWC and compute the same function — G and D
// values and every gradient of the training losses, at half-precision agreement (cuDNN may pick other algorithms
// for the other layout); the FP32 blocks are untouched.
TEST(StyleGAN2Cuda, ChannelsLastFp16BlocksComputeTheSameFunction) {
  if (!kernels::cuda_kernels_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  std::vector<Result> results;
  for (bool channels_last : {false, true}) {
    at::manual_seed(7);  // the same weights both times
    GeneratorConfig gc = small_generator(true);
    DiscriminatorConfig dc = small_discriminator(true);
    gc.synthesis.fp16_channels_last = dc.fp16_channels_last = channels_last;
    Generator G(gc);
    Discriminator D(dc);
    G.train();
    D.train();
    at::Tensor z = at::randn({4, 64}), real = at::rand({4, 3, 64, 64}) * 2 - 1;
    G.to(at::kCUDA);
    D.to(at::kCUDA);
    results.push_back(run(G, D, z.cuda(), real.cuda(), kernels::Impl::kAuto));
  }
  compare("fp16 blocks: channels-last vs NCHW", results[1], results[0], 2e-2, 5e-2);
}
