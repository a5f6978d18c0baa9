#include "train/train_options.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "cluster/world.h"
#include "core/error.h"
#include "core/version.h"

namespace facetex::train {

std::string preset_path(const std::string& name) {
  const std::filesystem::path p = std::filesystem::path(FACETEX_SOURCE_DIR) / "configs" / (name + ".toml");
  FACETEX_CHECK_USAGE(std::filesystem::exists(p), "unknown preset '{}' (no {}); presets: paper1024, auto, "
                      "stylegan2-256, synth64", name, p.string());
  return p.string();
}

namespace {

// StyleGAN2-ADA's `auto` configuration (train.py): every hyper-parameter from the resolution and the GPU count, for
// the keys the config does not set itself.
void apply_auto_defaults(Config& c) {
  const int64_t res = c.get_int("model.resolution", 256);
  const int64_t gpus = cluster::discover_world().size;
  const int64_t batch = std::max(std::min(gpus * std::min<int64_t>(4096 / res, 32), int64_t{64}), gpus);
  auto set_default = [&](const std::string& key, const std::string& value) {
    if (!c.has(key)) c.set_value(key, value);
  };
  set_default("train.batch", std::to_string(batch));
  // As train.py: --batch sets batch_gpu = batch / gpus; mbstd, gamma and ema keep the auto batch's values.
  set_default("train.batch_gpu", std::to_string(c.get_int("train.batch", batch) / gpus));
  set_default("model.mbstd_group", std::to_string(std::min<int64_t>(batch / gpus, 4)));
  set_default("model.channel_base", std::to_string(res >= 512 ? 32768 : 16384));
  set_default("model.channel_max", "512");
  set_default("model.mapping_layers", "2");
  set_default("model.num_fp16_res", "4");
  set_default("model.conv_clamp", "256.0");
  const double lr = res >= 1024 ? 0.002 : 0.0025;
  set_default("train.lr_G", fmt::format("{}", lr));
  set_default("train.lr_D", fmt::format("{}", lr));
  set_default("train.r1_gamma", fmt::format("{}", 0.0002 * double(res * res) / double(batch)));
  set_default("train.ema_kimg", fmt::format("{}", batch * 10.0 / 32.0));
  set_default("train.ema_rampup", "0.05");
}

}  // namespace

TrainOptions parse_train_options(const Config& config) {
  Config c = config;
  if (c.get_bool("train.auto", false)) apply_auto_defaults(c);
  TrainOptions o;
  o.run_dir = c.get_string("run.dir", "");
  o.device = c.get_string("run.device", o.device);
  o.seed = c.get_uint("run.seed", 0);
  o.total_kimg = c.get_double("run.total_kimg", o.total_kimg);
  o.kimg_per_tick = c.get_double("run.kimg_per_tick", o.kimg_per_tick);
  o.snap_ticks = c.get_int("run.snap_ticks", o.snap_ticks);
  o.keep_checkpoints = c.get_int("run.keep_checkpoints", o.keep_checkpoints);
  o.grid_images = c.get_int("run.grid_images", o.grid_images);
  o.comm = c.get_string("run.comm", o.comm);
  o.bucket_mb = c.get_double("run.bucket_mb", o.bucket_mb);
  o.cudnn_benchmark = c.get_bool("run.cudnn_benchmark", o.cudnn_benchmark);
  o.allow_tf32 = c.get_bool("run.allow_tf32", o.allow_tf32);
  FACETEX_CHECK_USAGE(o.comm == "auto" || o.comm == "single" || o.comm == "mpi" || o.comm == "nccl",
                      "run.comm must be auto, single, mpi or nccl, got '{}'", o.comm);
  FACETEX_CHECK_USAGE(o.bucket_mb > 0, "run.bucket_mb must be > 0, got {}", o.bucket_mb);
  FACETEX_CHECK_USAGE(o.device == "cpu" || o.device == "cuda", "run.device must be cpu or cuda, got '{}'", o.device);
  FACETEX_CHECK_USAGE(o.total_kimg > 0 && o.kimg_per_tick > 0 && o.snap_ticks >= 1 && o.keep_checkpoints >= 1,
                      "run.total_kimg, run.kimg_per_tick must be > 0 and run.snap_ticks, run.keep_checkpoints >= 1");
  FACETEX_CHECK_USAGE(std::isfinite(o.total_kimg) && o.total_kimg * 1000 >= 1,
                      "run.total_kimg (--kimg) {} must be finite and at least one image (0.001)", o.total_kimg);
  FACETEX_CHECK_USAGE(std::isfinite(o.kimg_per_tick), "run.kimg_per_tick {} must be finite", o.kimg_per_tick);
  FACETEX_CHECK_USAGE(o.grid_images >= 1 && o.grid_images <= 4096, "run.grid_images must be 1..4096, got {}",
                      o.grid_images);

  o.mode = c.get_string("model.mode", o.mode);
  o.background = c.get_string("model.background", o.background);
  o.init_weights = c.get_string("model.init_weights", "");
  o.face_model_mat = c.get_string("model.face_model_mat", "");
  o.face_model_uv = c.get_string("model.face_model_uv", "");
  o.background_generator = c.get_string("model.background_generator", "");
  o.dfr = c.get_string("model.dfr", "");
  o.rignet = c.get_string("model.rignet", "");
  o.recon_net = c.get_string("model.recon_net", "");
  o.mtcnn_dir = c.get_string("model.mtcnn_dir", "");
  o.texture_resolution = static_cast<int>(c.get_int("model.texture_resolution", 0));
  FACETEX_CHECK_USAGE(o.mode == "image" || o.mode == "texture", "model.mode must be image or texture, got '{}'", o.mode);
  FACETEX_CHECK_USAGE(o.texture_resolution >= 0, "model.texture_resolution must be >= 0 (0: the dataset's), got {}",
                      o.texture_resolution);
  FACETEX_CHECK_USAGE(o.background == "dataset" || o.background == "generated",
                      "model.background must be dataset or generated, got '{}'", o.background);
  // Fresh networks from [model] keys (ignored when model.init_weights supplies init_kwargs).
  auto& G = o.G;
  auto& D = o.D;
  const int res = static_cast<int>(c.get_int("model.resolution", 256));
  G.img_resolution = D.img_resolution = res;
  G.z_dim = static_cast<int>(c.get_int("model.z_dim", 512));
  G.w_dim = static_cast<int>(c.get_int("model.w_dim", 512));
  G.mapping.num_layers = static_cast<int>(c.get_int("model.mapping_layers", 8));
  G.synthesis.channel_base = D.channel_base = static_cast<int>(c.get_int("model.channel_base", 32768));
  G.synthesis.channel_max = D.channel_max = static_cast<int>(c.get_int("model.channel_max", 512));
  G.synthesis.num_fp16_res = D.num_fp16_res = static_cast<int>(c.get_int("model.num_fp16_res", 0));
  G.synthesis.fp16_channels_last = D.fp16_channels_last = c.get_bool("model.fp16_channels_last", false);
  if (auto clamp = c.get_double("model.conv_clamp")) {
    FACETEX_CHECK_USAGE(std::isfinite(*clamp) && *clamp >= 0, "model.conv_clamp must be finite and >= 0 (leave it "
                        "unset for no clamping), got {}", *clamp);
    G.synthesis.conv_clamp = D.conv_clamp = *clamp;
  }
  D.mbstd_group_size = c.get_int("model.mbstd_group", 4);
  FACETEX_CHECK_USAGE(res >= 8 && (res & (res - 1)) == 0, "model.resolution must be a power of two >= 8, got {}", res);
  // Checked here, before a run folder is made; the networks check again for what a weight file brings.
  models::stylegan2::check_channel_counts(res, D.channel_base, D.channel_max, "model.channel_base at model.resolution");
  if (o.texture_resolution > 0) {
    models::stylegan2::check_channel_counts(o.texture_resolution, D.channel_base, D.channel_max,
                                            "model.channel_base at model.texture_resolution");
  }
  G.synthesis.w_dim = G.w_dim;
  G.synthesis.img_resolution = res;
  G.mapping.z_dim = G.z_dim;
  G.mapping.w_dim = G.w_dim;

  o.shards = c.get_string("data.shards", "");
  o.xflip = c.get_bool("data.xflip", o.xflip);
  o.loader_threads = static_cast<int>(c.get_int("data.threads", 0));

  o.batch = c.get_int("train.batch", o.batch);
  o.batch_gpu = c.get_int("train.batch_gpu", 0);
  o.lr_G = c.get_double("train.lr_G", o.lr_G);
  o.lr_D = c.get_double("train.lr_D", o.lr_D);
  o.beta1 = c.get_double("train.beta1", o.beta1);
  o.beta2 = c.get_double("train.beta2", o.beta2);
  o.G_reg_interval = static_cast<int>(c.get_int("train.G_reg_interval", o.G_reg_interval));
  o.D_reg_interval = static_cast<int>(c.get_int("train.D_reg_interval", o.D_reg_interval));
  o.r1_gamma = c.get_double("train.r1_gamma", o.r1_gamma);
  o.pl_weight = c.get_double("train.pl_weight", o.pl_weight);
  o.pl_decay = c.get_double("train.pl_decay", o.pl_decay);
  o.pl_batch_shrink = c.get_int("train.pl_batch_shrink", o.pl_batch_shrink);
  o.style_mixing = c.get_double("train.style_mixing", o.style_mixing);
  o.noise_mode = c.get_string("train.noise_mode", o.noise_mode);
  FACETEX_CHECK_USAGE(o.noise_mode == "random" || o.noise_mode == "const" || o.noise_mode == "none",
                      "train.noise_mode must be random, const or none, got '{}'", o.noise_mode);
  o.ema_kimg = c.get_double("train.ema_kimg", o.ema_kimg);
  if (auto r = c.get_double("train.ema_rampup")) o.ema_rampup = *r;
  FACETEX_CHECK_USAGE(o.batch >= 1 && o.batch_gpu >= 0, "train.batch must be >= 1 and train.batch_gpu >= 0");
  FACETEX_CHECK_USAGE(o.G_reg_interval >= 1 && o.D_reg_interval >= 1, "regularisation intervals must be >= 1");
  FACETEX_CHECK_USAGE(o.style_mixing >= 0 && o.style_mixing <= 1, "train.style_mixing must be in [0, 1]");

  o.augment = c.get_string("augment.mode", o.augment);
  o.augpipe = c.get_string("augment.pipe", o.augpipe);
  o.augment_p = c.get_double("augment.p", o.augment_p);
  o.ada_target = c.get_double("augment.target", o.ada_target);
  o.ada_interval = c.get_int("augment.interval", o.ada_interval);
  o.ada_kimg = c.get_double("augment.kimg", o.ada_kimg);
  FACETEX_CHECK_USAGE(o.augment == "ada" || o.augment == "fixed" || o.augment == "noaug",
                      "augment.mode must be ada, fixed or noaug, got '{}'", o.augment);
  FACETEX_CHECK_USAGE(o.augpipe == "bgc", "augment.pipe '{}' is not available (bgc)", o.augpipe);
  FACETEX_CHECK_USAGE(o.augment_p >= 0 && o.augment_p <= 1, "augment.p must be in [0, 1], got {}", o.augment_p);
  FACETEX_CHECK_USAGE(o.ada_target > 0 && o.ada_target < 1, "augment.target must be in (0, 1), got {}", o.ada_target);
  FACETEX_CHECK_USAGE(o.ada_interval >= 1 && o.ada_kimg > 0, "augment.interval must be >= 1 and augment.kimg > 0");
  // Values a network or an optimiser cannot run with; without these a zero-width layer crashes or trains on NaN.
  FACETEX_CHECK_USAGE(G.z_dim >= 1 && G.w_dim >= 1, "model.z_dim and model.w_dim must be >= 1, got {} and {}",
                      G.z_dim, G.w_dim);
  FACETEX_CHECK_USAGE(G.mapping.num_layers >= 1, "model.mapping_layers must be >= 1, got {}", G.mapping.num_layers);
  FACETEX_CHECK_USAGE(!D.mbstd_group_size || *D.mbstd_group_size >= 1, "model.mbstd_group must be >= 1, got {}",
                      D.mbstd_group_size.value_or(0));
  // Every real-valued setting is finite: an infinite rate or weight trains on non-finite gradients to the end.
  for (const auto& [key, value] :
       {std::pair<const char*, double>{"train.lr_G", o.lr_G}, {"train.lr_D", o.lr_D}, {"train.r1_gamma", o.r1_gamma},
        {"train.pl_weight", o.pl_weight}, {"train.ema_kimg", o.ema_kimg}, {"augment.kimg", o.ada_kimg},
        {"train.ema_rampup", o.ema_rampup.value_or(0)}}) {
    FACETEX_CHECK_USAGE(std::isfinite(value), "{} must be finite, got {}", key, value);
  }
  FACETEX_CHECK_USAGE(o.lr_G > 0 && o.lr_D > 0, "train.lr_G and train.lr_D must be > 0, got {} and {}", o.lr_G, o.lr_D);
  FACETEX_CHECK_USAGE(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
                      "train.beta1 and train.beta2 must be in [0, 1), got {} and {}", o.beta1, o.beta2);
  FACETEX_CHECK_USAGE(o.r1_gamma >= 0 && o.pl_weight >= 0, "train.r1_gamma and train.pl_weight must be >= 0");
  FACETEX_CHECK_USAGE(o.pl_decay >= 0 && o.pl_decay <= 1 && o.pl_batch_shrink >= 1,
                      "train.pl_decay must be in [0, 1] and train.pl_batch_shrink >= 1");
  FACETEX_CHECK_USAGE(o.ema_kimg >= 0 && (!o.ema_rampup || *o.ema_rampup >= 0),
                      "train.ema_kimg and train.ema_rampup must be >= 0");
  FACETEX_CHECK_USAGE(o.loader_threads >= 0, "data.threads must be >= 0 (0: one per core), got {}", o.loader_threads);
  // Every key must be one the trainer reads: a typo (train.lr_g for train.lr_G) would otherwise be ignored silently.
  config.has("run.preset");  // chose the base config; not a training setting
  const std::vector<std::string> unknown = config.unread_keys();
  FACETEX_CHECK_USAGE(unknown.empty(), "{}; configs/*.toml and docs/operations.md list the settings",
                      unknown_keys_message(unknown, config.asked_keys(), "facetex train"));
  return o;
}

}  // namespace facetex::train
