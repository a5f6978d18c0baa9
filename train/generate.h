// Generation jobs (paper-system-spec.md §7.4): `facetex generate textured` — UV textures with coupled geometry (the
// texture G's image for z, geometry from DFR on the frozen 2D generator's W+ for the same z) as OBJ + MTL + PNG plus
// a front render — and `facetex generate pairs` — the public generate script's (image, ws) pairs, the training data
// of DFR and RigNet.
//
// Randomness, per seed and therefore independent of --batch and --part:
//   * z = NumPy's RandomState(seed).randn(z_dim) (MT19937 + the legacy polar Box-Muller), as the public scripts draw
//     it; exactly reproduced here in C++ (numpy_randn), converted to float32.
//   * everything else a seed needs (the style-mixing cutoff and mixing z of `pairs`) comes from a torch CPU
//     generator seeded with `seed`; for noise mode `random` the synthesis of that seed runs alone after
//     at::manual_seed(seed) (all devices), so its noise maps do not depend on the batch either. With `const` and
//     `none` the synthesis is batched.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "models/stylegan2/synthesis.h"

namespace facetex::train {

// "0-99" (inclusive range), "1,5,9", or mixtures ("0-3,10"); seeds are unsigned 32-bit as NumPy's. Order is kept,
// duplicates are dropped. UsageError with the offending piece otherwise.
std::vector<uint32_t> parse_seeds(const std::string& text);

// NumPy's np.random.RandomState(seed).randn(n) as float64.
std::vector<double> numpy_randn(uint32_t seed, int64_t n);

struct GenerateCommon {
  std::vector<uint32_t> seeds;  // already sliced by --part
  std::filesystem::path out;
  double truncation_psi = 1.0;
  models::stylegan2::NoiseMode noise = models::stylegan2::NoiseMode::kConst;
  int64_t batch = 4;
  c10::Device device = c10::Device(c10::kCPU);
  // Checked between batches (e.g. a SIGTERM flag); when it returns true the job stops after the current batch's
  // writes and generate_* returns `stopped = true`.
  std::function<bool()> stop;
};

struct GenerateResult {
  int64_t written = 0, skipped = 0;
  bool stopped = false;
};

struct TexturedOptions {
  GenerateCommon common;
  std::filesystem::path checkpoint;            // weight file / checkpoint with G_ema (else G): the texture G
  std::filesystem::path background_generator;  // the frozen 2D generator (G_ema, else G)
  std::filesystem::path dfr;                   // DFR weight file
  std::filesystem::path face_model_mat, face_model_uv;
  int64_t render_resolution = 0;  // front render side; 0 = the texture resolution
};

// Per seed into `out`: seed%04d.obj + .mtl + .png (posed mesh of the face model with DFR's identity, expression,
// angles and translation; the texture ((G(z) + 1) / 2).clamp(0, 1)) and seed%04d_front.png (the texture on the
// unposed, untranslated mesh — angles and translation zeroed — rendered with the 224-protocol camera filling the
// image, on white). A seed whose four files exist is skipped. No style mixing (generate_3d.py). UsageError /
// DataError naming the file for missing or mismatched inputs (texture G and 2D G must share z_dim; DFR must read
// the 2D G's num_ws; the face model must have the 80/64 identity/expression layout).
GenerateResult generate_textured(const TexturedOptions& options);

struct PairsOptions {
  GenerateCommon common;  // noise defaults to random here (generate.py)
  std::filesystem::path generator;
  // The group of `generator` to synthesise with: generate.py loads G (not G_ema); the default G falls back to G_ema
  // for a file without it, a group named otherwise must exist.
  std::string network = "G";
  double style_mixing = 0.9;
};

// Per seed: seed%04d.png (the 2D generator's image, (x + 1) * 127.5 clamped to uint8) and seed%04d.npz (key ws:
// float32 (1, num_ws, w_dim), the ws that made it — after truncation and style mixing — as generate.py's .npz), the
// npz last. Skip when both exist.
GenerateResult generate_pairs(const PairsOptions& options);

}  // namespace facetex::train
