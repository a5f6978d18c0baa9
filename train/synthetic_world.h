// The synthetic world (DESIGN.md §5): a closed-loop check that unsupervised texture learning works, on any machine.
// "Real" images are renders of a synthetic morphable model (models/face3d) with UV textures drawn from a known
// procedural distribution (skin tone, shading, eyes, brows, mouth at the model's landmark UVs) over procedural
// backgrounds, at random identity, expression and pose — with exact annotations (/coeffs, /crop, /valid) and the
// ground-truth textures (/gt_texture) kept for evaluation. Training the texture GAN on these shards must move the
// generated texture distribution towards the true one (train/synth_metric.h measures it).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>

#include "models/face3d/morphable_model.h"

namespace facetex::train {

struct SyntheticWorldOptions {
  std::filesystem::path out;
  int64_t count = 1024;
  int resolution = 64;          // rendered image side
  int texture_resolution = 64;  // UV texture side
  uint64_t seed = 0;
  int64_t shard_size = 256;
  int model_grid = 40;          // the synthetic model has model_grid^2 vertices
  // A world already in `out` made with the same settings is kept (nothing is written: the world is a function of
  // them); one made with other settings is refused (UsageError naming them) unless `overwrite`, which unlists and
  // removes its shards first.
  bool overwrite = false;
};

struct SyntheticWorldSummary {
  int64_t images = 0;
  double seconds = 0;
  bool kept = false;  // the world was already there, made with these settings
};

// Writes <out>/model.mat + <out>/uv.npy (the face model), <out>/shards/ (raw images with annotations and
// ground-truth textures, dataset.json) and <out>/world.json (the settings). Deterministic in the seed.
SyntheticWorldSummary write_synthetic_world(const SyntheticWorldOptions& options);

// The face model of a world folder.
models::face3d::MorphableModel load_world_model(const std::filesystem::path& world_dir);

// The world's distributions, usable on their own (tests, metrics). All draw from `gen` only.
// Textures [n, 3, T, T] in [-1, 1] (v up: row 0 is the top of the UV square, v = 1).
at::Tensor sample_world_textures(const models::face3d::MorphableModel& model, int64_t n, int texture_resolution,
                                 at::Generator& gen);
at::Tensor sample_world_backgrounds(int64_t n, int resolution, at::Generator& gen);
at::Tensor sample_world_coeffs(const models::face3d::MorphableModel& model, int64_t n, at::Generator& gen);
// The crop box that maps the 224-protocol camera onto a whole `resolution`-pixel image: [left=0, up=0, s].
at::Tensor world_crop(int64_t n, int resolution);

}  // namespace facetex::train
