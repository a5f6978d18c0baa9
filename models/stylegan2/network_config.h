// Constructor arguments of the StyleGAN2 networks, read from the `init_kwargs` JSON that published pickles (and
// facetex weight files) carry, so that any resolution 4..1024 and any channel configuration builds exactly as the
// reference's constructor would. Defaults are the reference's defaults.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace facetex::models::stylegan2 {

struct MappingConfig {
  int z_dim = 512;
  int c_dim = 0;
  int w_dim = 512;
  int num_ws = 0;                          // set by the generator (0 = do not broadcast)
  int num_layers = 8;
  std::optional<int> layer_features;       // default: w_dim
  std::string activation = "lrelu";
  double lr_multiplier = 0.01;
  std::optional<double> w_avg_beta = 0.995;  // none: no w_avg tracking
};

struct SynthesisConfig {
  int w_dim = 512;
  int img_resolution = 1024;
  int img_channels = 3;
  int channel_base = 32768;
  int channel_max = 512;
  int num_fp16_res = 0;
  // FP16 blocks keep activations channels-last (NHWC) on CUDA: the reference's fp16_channels_last / --nhwc. The same
  // function, laid out for the tensor cores' convolutions; off by default, as in the reference.
  bool fp16_channels_last = false;
  std::optional<double> conv_clamp;
  std::string architecture = "skip";       // orig | skip | resnet
  std::vector<double> resample_filter = {1, 3, 3, 1};
  bool use_noise = true;
  std::string activation = "lrelu";
  int kernel_size = 3;

  std::vector<int> block_resolutions() const;   // 4, 8, ..., img_resolution
  int channels(int res) const;                  // min(channel_base / res, channel_max)
  int fp16_resolution() const;                  // blocks at or above it run in FP16 (on CUDA)
  int num_ws() const;
};

struct GeneratorConfig {
  int z_dim = 512, c_dim = 0, w_dim = 512, img_resolution = 1024, img_channels = 3;
  MappingConfig mapping;
  SynthesisConfig synthesis;
};

struct DiscriminatorConfig {
  int c_dim = 0;
  int img_resolution = 1024;
  int img_channels = 3;
  std::string architecture = "resnet";     // orig | skip | resnet
  int channel_base = 32768;
  int channel_max = 512;
  int num_fp16_res = 0;
  bool fp16_channels_last = false;          // as SynthesisConfig::fp16_channels_last
  std::optional<double> conv_clamp;
  std::string activation = "lrelu";
  std::vector<double> resample_filter = {1, 3, 3, 1};
  int freeze_layers = 0;
  std::optional<int> mbstd_group_size = 4;  // none: the whole minibatch
  int mbstd_num_channels = 1;
  std::string epilogue_activation = "lrelu";

  std::vector<int> block_resolutions() const;   // img_resolution, ..., 8
  int channels(int res) const;
  int fp16_resolution() const;
};

// UsageError unless every block from 4x4 to img_resolution gets min(channel_base / res, channel_max) >= 1 channels
// (the reference would build zero-channel layers and fail deep inside a convolution). `network` names it.
void check_channel_counts(int img_resolution, int channel_base, int channel_max, const char* network);

// The init_kwargs JSON the reference's constructors would take for these configs (written into weight files and
// checkpoints, so that facetex-trained networks load like published ones).
std::string to_init_kwargs(const GeneratorConfig& config);
std::string to_init_kwargs(const DiscriminatorConfig& config);

// Parse init_kwargs JSON (from a weight file or checkpoint). DataError naming the key for wrong types or unsupported
// values (e.g. c_dim > 0). `context` names the source in messages (a file and group).
GeneratorConfig parse_generator_config(const std::string& init_kwargs_json, const std::string& context);
DiscriminatorConfig parse_discriminator_config(const std::string& init_kwargs_json, const std::string& context);
MappingConfig parse_mapping_config(const std::string& init_kwargs_json, const std::string& context);

}  // namespace facetex::models::stylegan2
