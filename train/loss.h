// The StyleGAN2-ADA objective as the reference's StyleGAN2Loss.accumulate_gradients (paper-system-spec.md §4.1-4.3):
// non-saturating logistic G and D losses on D(AugmentPipe(x)), lazy path-length regularisation of what G
// synthesises (the texture, in texture mode) and lazy R1 on the reals, each backpropagated with the phase's gain.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"
#include "train/generator_pipeline.h"
#include "train/training_stats.h"

namespace facetex::train {

class AugmentPipe;

enum class Phase { kGmain, kGreg, kDmain, kDreg };
const char* phase_name(Phase phase);

struct LossOptions {
  double r1_gamma = 10.0;
  int64_t pl_batch_shrink = 2;
  double pl_decay = 0.01;
  double pl_weight = 2.0;
  double style_mixing = 0.9;
  models::stylegan2::NoiseMode noise = models::stylegan2::NoiseMode::kRandom;
};

class StyleGAN2Loss {
 public:
  StyleGAN2Loss(models::stylegan2::Generator& G, models::stylegan2::Discriminator& D, AugmentPipe* augment,
                GeneratorPipeline& pipeline, LossOptions options, TrainingStats& stats);

  // Called right before the last backward pass of the next accumulate_gradients() call (the Dmain phase runs two:
  // fakes, then reals) — where a multi-rank run arms its gradient reducer, as the reference syncs DDP only there.
  std::function<void()> before_final_backward;

  // One round of one phase on one chunk; gradients accumulate in the parameters that require them.
  void accumulate_gradients(Phase phase, const at::Tensor& real_img, const at::Tensor& gen_z,
                            const BatchContext& context, double gain);

  // D(AugmentPipe(img)).
  at::Tensor run_D(const at::Tensor& img);

  at::Tensor pl_mean;  // running path-length mean (per rank, as the reference: not synchronised)
  // Called with sign(D(A(real))) whenever real logits are computed (Dmain and Dreg): the ADA statistic.
  std::function<void(const at::Tensor&)> on_real_signs;
  // Parity tests: use this path-length noise instead of randn_like(texture) / sqrt(H W) when defined.
  at::Tensor pl_noise_override;
  const LossOptions& options() const { return o_; }

 private:
  models::stylegan2::Generator& G_;
  models::stylegan2::Discriminator& D_;
  AugmentPipe* augment_;
  GeneratorPipeline& pipeline_;
  LossOptions o_;
  TrainingStats& stats_;
};

// requires_grad on every parameter of a module.
void set_requires_grad(torch::nn::Module& module, bool requires_grad);

}  // namespace facetex::train
