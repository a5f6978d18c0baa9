// How close generated UV textures are to the synthetic world's ground-truth textures — the closed-loop quality
// check (DESIGN.md §5). Two terms, both 0 for identical distributions:
//   kid    : Kernel Inception Distance computed on the features of a FIXED random convolutional network (three
//            strided 3x3 conv + leaky ReLU layers with seeded He-initialised weights; per-channel mean and std of
//            the last layer = 256 features), with the cubic polynomial kernel and the unbiased MMD^2 estimator
//            (as StyleGAN2-ADA's KID). No pretrained network exists offline, so this is a stand-in for KID on
//            Inception features — it measures texture structure (eyes, brows, mouth, shading), not photo realism.
//   colour : sum over RGB of |mean difference| + |std difference| of pixel values in [-1, 1].
// synth_distance = kid + colour.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace facetex::data {
class Dataset;
}
namespace facetex::models::stylegan2 {
class Generator;
}

namespace facetex::train {

struct SynthDistance {
  double kid = 0, colour = 0;
  double total() const { return kid + colour; }
};

// generated, truth: [N, 3, T, T] and [M, 3, T, T] in [-1, 1] (any T >= 16; both resized to 64 for the features).
SynthDistance synth_distance(const at::Tensor& generated, const at::Tensor& truth);

// The world's first n ground-truth textures ([n, 3, T, T] in [-1, 1]); DataError when the dataset has none.
at::Tensor world_truth_textures(const data::Dataset& dataset, int64_t n);

// synth_distance of G's textures (eval, const noise) for a fixed set of latents (seed 1, one per truth texture):
// the same latents at every evaluation, so values along a run and between runs are comparable.
SynthDistance generator_synth_distance(models::stylegan2::Generator& G, const at::Tensor& truth);

// `facetex metrics synth`: the distance of the run's G_ema at its start (init.h5) and at its latest checkpoint to the
// world's ground-truth textures (the same 256 latents for both), and a PNG plot of the curve the run recorded in
// metric-synth.jsonl (written to <run>/synth_distance.png).
struct SynthReport {
  SynthDistance init, now;
  double now_kimg = 0;
  std::string plot;
};
SynthReport evaluate_synth_run(const std::string& run_dir);

}  // namespace facetex::train
