// Training checkpoints (HDF5, format "facetex-checkpoint"): everything a run needs to continue bit-exactly on the
// same hardware — G, D, G_ema (as weight-file groups, so a checkpoint is also a weight file), both Adam states,
// the augmentation probability and ADA accumulator, pl_mean, counters, RNG states, the loader cursor, pending
// statistics and the resolved config. Written atomically; the run keeps the last K and points latest.h5 at the
// newest. The public code saves none of the optimiser/counter/RNG state (spec §11.11); this is an extension.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/sampler.h"
#include "models/weights/weight_file.h"
#include "train/adam.h"

namespace facetex::train {

struct TrainState {
  int64_t cur_nimg = 0;
  int64_t batch_idx = 0;
  int64_t cur_tick = 0;
  int64_t tick_start_nimg = 0;
  double training_seconds = 0;  // wall time spent training before this checkpoint (for the status line)
  double augment_p = 0;
  std::string ada_state;  // the ADA controller's state (JSON: p, pending statistic, iteration count)
  double pl_mean = 0;  // rank 0's running path-length mean
  // Every rank's pl_mean, [W], for W > 1: each rank keeps its own (as the reference), and a resume on W ranks gives
  // each its own back (empty in single-rank and older checkpoints).
  std::vector<double> pl_mean_ranks;
  data::Cursor loader_cursor;
  data::Cursor background_cursor;  // texture mode: the backgrounds' stream
  // uint8 generator states: the global CPU generator of each rank ([L] for one rank, [W, L] for W ranks: per-rank
  // noise, augmentation and mixing draws), the CUDA generator (undefined without CUDA), and the latent stream shared
  // by all ranks (the global batch of z, of which each rank takes its slice; undefined in older checkpoints).
  at::Tensor cpu_rng_state, cuda_rng_state, latent_rng_state;
  std::vector<std::string> stats_names;
  std::vector<double> stats_values;
  std::string config_toml;
};

struct CheckpointNetworks {
  models::NetworkWeights G, D, G_ema;
};

void save_checkpoint(const std::filesystem::path& path, const CheckpointNetworks& networks, Adam& opt_G, Adam& opt_D,
                     const TrainState& state);

// Restores the optimiser states into opt_G/opt_D (matched by parameter name, shapes checked) and returns the
// networks and state. DataError naming the file for anything missing or inconsistent.
std::pair<CheckpointNetworks, TrainState> load_checkpoint(const std::filesystem::path& path, Adam& opt_G, Adam& opt_D);

// <run>/checkpoints/ckpt-<kimg:09.3f>.h5 style names, retention and the latest.h5 link.
std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int64_t cur_nimg);
void publish_checkpoint(const std::filesystem::path& run_dir, const std::filesystem::path& written, int64_t keep);
// The newest checkpoint that opens cleanly (latest.h5 first, then by name), or none.
std::optional<std::filesystem::path> find_latest_checkpoint(const std::filesystem::path& run_dir);
// The resolved config (TOML text) a checkpoint was written with, without reading its networks.
std::string read_checkpoint_config(const std::filesystem::path& path);

}  // namespace facetex::train
