#include "train/loss.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "core/error.h"
#include "train/augment_pipe.h"

namespace facetex::train {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::kGmain: return "Gmain";
    case Phase::kGreg: return "Greg";
    case Phase::kDmain: return "Dmain";
    case Phase::kDreg: return "Dreg";
  }
  return "?";
}

void set_requires_grad(torch::nn::Module& module, bool requires_grad) {
  for (auto& p : module.parameters(true)) p.set_requires_grad(requires_grad);
}

StyleGAN2Loss::StyleGAN2Loss(models::stylegan2::Generator& G, models::stylegan2::Discriminator& D,
                             AugmentPipe* augment, GeneratorPipeline& pipeline, LossOptions options,
                             TrainingStats& stats)
    : pl_mean(at::zeros({}, at::kFloat)), G_(G), D_(D), augment_(augment), pipeline_(pipeline), o_(options),
      stats_(stats) {}

at::Tensor StyleGAN2Loss::run_D(const at::Tensor& img) {
  return D_.forward(augment_ != nullptr ? augment_->forward(img) : img);
}

void StyleGAN2Loss::accumulate_gradients(Phase phase, const at::Tensor& real_img, const at::Tensor& gen_z,
                                         const BatchContext& context, double gain) {
  const bool do_Gmain = phase == Phase::kGmain;
  const bool do_Dmain = phase == Phase::kDmain;
  const bool do_Gpl = phase == Phase::kGreg && o_.pl_weight != 0;
  const bool do_Dr1 = phase == Phase::kDreg && o_.r1_gamma != 0;
  // Each phase's last backward is the one at the end of its branch; Dmain's fake-side backward is not the last.
  auto final_backward = [this](const at::Tensor& loss) {
    if (before_final_backward) before_final_backward();
    loss.backward();
  };

  if (do_Gmain) {
    GeneratorOutput gen = pipeline_.run(G_, gen_z, context, o_.style_mixing, o_.noise);
    at::Tensor logits = run_D(gen.image);
    stats_.report("Loss/scores/fake", logits);
    stats_.report("Loss/signs/fake", logits.sign());
    at::Tensor loss = at::softplus(-logits);
    stats_.report("Loss/G/loss", loss);
    final_backward(loss.mean() * gain);
  }

  if (do_Gpl) {
    const int64_t n = std::max<int64_t>(1, gen_z.size(0) / o_.pl_batch_shrink);
    BatchContext sub;
    if (context.backgrounds.defined()) sub = {context.backgrounds.narrow(0, 0, n), context.coeffs.narrow(0, 0, n),
                                              context.crops.narrow(0, 0, n)};
    GeneratorOutput gen = pipeline_.run(G_, gen_z.narrow(0, 0, n), sub, o_.style_mixing, o_.noise);
    const at::Tensor& tex = gen.texture;
    at::Tensor noise = pl_noise_override.defined() ? pl_noise_override
                                                   : at::randn_like(tex) / std::sqrt(double(tex.size(2) * tex.size(3)));
    at::Tensor grads =
        torch::autograd::grad({(tex * noise).sum()}, {gen.ws}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    at::Tensor lengths = grads.square().sum(2).mean(1).sqrt();
    // pl_mean moves to the training device once: a host copy would cost two syncs per Greg.
    if (pl_mean.device() != lengths.device()) pl_mean = pl_mean.to(lengths.device());
    at::Tensor mean = pl_mean.lerp(lengths.mean(), o_.pl_decay);
    pl_mean.copy_(mean.detach());
    at::Tensor penalty = (lengths - mean).square();
    stats_.report("Loss/pl_penalty", penalty);
    at::Tensor loss = penalty * o_.pl_weight;
    stats_.report("Loss/G/reg", loss);
    // tex[:, 0, 0, 0] * 0 keeps the synthesis output in the graph, as the reference does.
    final_backward((tex.select(1, 0).select(1, 0).select(1, 0) * 0 + loss).mean() * gain);
  }

  at::Tensor loss_Dgen;
  if (do_Dmain) {
    GeneratorOutput gen;
    {
      // G is frozen in this phase: no graph through it.
      at::NoGradGuard no_grad;
      gen = pipeline_.run(G_, gen_z, context, o_.style_mixing, o_.noise);
    }
    at::Tensor logits = run_D(gen.image.detach());
    stats_.report("Loss/scores/fake", logits);
    stats_.report("Loss/signs/fake", logits.sign());
    loss_Dgen = at::softplus(logits);
    (loss_Dgen.mean() * gain).backward();
  }

  if (do_Dmain || do_Dr1) {
    at::Tensor real = real_img.detach().requires_grad_(do_Dr1);
    at::Tensor logits = run_D(real);
    stats_.report("Loss/scores/real", logits);
    stats_.report("Loss/signs/real", logits.sign());
    if (on_real_signs) on_real_signs(logits.detach().sign());
    at::Tensor loss_real = at::zeros({}, logits.options());
    if (do_Dmain) {
      loss_real = at::softplus(-logits);
      stats_.report("Loss/D/loss", loss_Dgen + loss_real);
    }
    at::Tensor loss_r1 = at::zeros({}, logits.options());
    if (do_Dr1) {
      at::Tensor r1 = torch::autograd::grad({logits.sum()}, {real}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
      at::Tensor penalty = r1.square().sum({1, 2, 3});
      loss_r1 = penalty * (o_.r1_gamma / 2);
      stats_.report("Loss/r1_penalty", penalty);
      stats_.report("Loss/D/reg", loss_r1);
    }
    final_backward((logits * 0 + loss_real + loss_r1).mean() * gain);
  }
}

}  // namespace facetex::train
