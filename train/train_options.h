// Every setting of a training run, resolved from the TOML config (a preset in configs/ plus --config/--set/flags)
// with the reference's defaults. The resolved config is written to the run folder and stored in checkpoints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/config.h"
#include "models/stylegan2/network_config.h"

namespace facetex::train {

struct TrainOptions {
  // [run]
  std::string run_dir;
  std::string device = "cpu";          // cpu | cuda
  uint64_t seed = 0;
  double total_kimg = 25000;
  double kimg_per_tick = 4;
  int64_t snap_ticks = 50;             // checkpoint + grids every N ticks (and at the end)
  int64_t keep_checkpoints = 3;
  int64_t grid_images = 16;            // images in each PNG grid
  std::string comm = "auto";           // communicator: auto | single | mpi | nccl (cluster/communicator.h)
  double bucket_mb = 25;               // gradient bucket size for the multi-rank reducer
  // CUDA library settings, as the reference training loop sets them (its --nobench / --allow-tf32 flags):
  bool cudnn_benchmark = true;         // cuDNN times the candidate convolution algorithms once per shape
  bool allow_tf32 = false;             // TF32 in cuDNN convolutions and cuBLAS matmuls (off = the reference numerics)
  // [model]
  std::string mode = "image";          // image | texture
  std::string background = "dataset";  // texture mode: dataset | generated
  std::string init_weights;            // optional weight file (G, D, G_ema groups) to start from
  std::string face_model_mat;          // texture mode: the morphable model (.mat) and its UVs (.npy)
  std::string face_model_uv;
  // background = generated: the frozen 2D generator (a weight file with G_ema or G, e.g. a converted ffhq.pkl),
  // DFR, RigNet, ReconNet (converted state dicts) and a folder with MTCNN's pnet.h5, rnet.h5, onet.h5.
  std::string background_generator, dfr, rignet, recon_net, mtcnn_dir;
  int texture_resolution = 0;          // texture mode: G's output side (0: the dataset resolution)
  models::stylegan2::GeneratorConfig G;
  models::stylegan2::DiscriminatorConfig D;
  // [data]
  std::string shards;
  bool xflip = false;
  int loader_threads = 0;
  // [train]
  int64_t batch = 32;                  // total over all ranks
  int64_t batch_gpu = 0;               // per round; 0 = batch / world
  double lr_G = 0.002, lr_D = 0.002;
  double beta1 = 0.0, beta2 = 0.99, eps = 1e-8;
  int G_reg_interval = 4, D_reg_interval = 16;
  double r1_gamma = 10.0;
  double pl_weight = 2.0, pl_decay = 0.01;
  int64_t pl_batch_shrink = 2;
  double style_mixing = 0.9;
  std::string noise_mode = "random";   // synthesis noise while training: random (reference) | const | none
  double ema_kimg = 10.0;
  std::optional<double> ema_rampup;    // none: no ramp-up (as when resuming from a pickle)
  // [augment]
  std::string augment = "ada";         // ada | fixed | noaug
  std::string augpipe = "bgc";
  double augment_p = 0.0;
  double ada_target = 0.6;
  int64_t ada_interval = 4;
  double ada_kimg = 100;
};

// Reads and validates every key (UsageError naming the key for bad values).
TrainOptions parse_train_options(const Config& config);

// The built-in presets (configs/<name>.toml): paper1024, auto, stylegan2-256, synth64.
std::string preset_path(const std::string& name);

}  // namespace facetex::train
