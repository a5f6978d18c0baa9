// Training settings: every built-in preset parses; `auto` derives the reference's hyper-parameters; bad values are
// usage errors naming the key.
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "train/train_options.h"

using namespace facetex;
using namespace facetex::train;

TEST(TrainOptions, EveryPresetParses) {
  for (const char* name : {"synth64", "stylegan2-256", "auto", "paper1024"}) {
    SCOPED_TRACE(name);
    const TrainOptions o = parse_train_options(Config::load(preset_path(name)));
    EXPECT_GT(o.batch, 0);
    EXPECT_GE(o.D.img_resolution, 64);
  }
  EXPECT_THROW(preset_path("nope"), UsageError);
  const TrainOptions p = parse_train_options(Config::load(preset_path("paper1024")));
  EXPECT_EQ(p.batch, 32);
  EXPECT_EQ(p.batch_gpu, 4);
  EXPECT_DOUBLE_EQ(p.r1_gamma, 2.0);
  EXPECT_EQ(p.mode, "texture");
}

TEST(TrainOptions, AutoDerivesTheReferenceHyperParameters) {
  // train.py cfg=auto at 1024 on one GPU: batch 4, gamma 0.0002*1024^2/4 = 52.43 (spec §4.7), ema 1.25, lr 0.002.
  Config c = Config::load(preset_path("auto"));
  c.set("model.resolution=1024");
  TrainOptions o = parse_train_options(c);
  EXPECT_EQ(o.batch, 4);
  EXPECT_NEAR(o.r1_gamma, 52.4288, 1e-9);
  EXPECT_DOUBLE_EQ(o.ema_kimg, 1.25);
  EXPECT_DOUBLE_EQ(o.lr_G, 0.002);
  EXPECT_EQ(o.G.synthesis.channel_base, 32768);
  EXPECT_EQ(o.G.mapping.num_layers, 2);
  ASSERT_TRUE(o.D.mbstd_group_size.has_value());
  EXPECT_EQ(*o.D.mbstd_group_size, 4);
  // At 256: batch min(4096/256, 32) = 16, lr 0.0025, half the channels; an explicit key wins.
  c.set("model.resolution=256");
  c.set("train.r1_gamma=1.0");
  o = parse_train_options(c);
  EXPECT_EQ(o.batch, 16);
  EXPECT_DOUBLE_EQ(o.lr_D, 0.0025);
  EXPECT_EQ(o.D.channel_base, 16384);
  EXPECT_DOUBLE_EQ(o.r1_gamma, 1.0);
  // An explicit batch sets batch_gpu = batch / gpus, as train.py's --batch (not the auto batch's 16).
  c.set("train.batch=4");
  o = parse_train_options(c);
  EXPECT_EQ(o.batch, 4);
  EXPECT_EQ(o.batch_gpu, 4);
}

TEST(TrainOptions, BadValuesAreUsageErrorsNamingTheKey) {
  for (const char* bad : {"model.mode=\"video\"", "model.resolution=48", "augment.mode=\"sometimes\"", "train.batch=0",
                          "run.device=\"tpu\"", "train.style_mixing=2.0",
                          // min(channel_base / res, channel_max) = 0 channels at the top resolution
                          "model.channel_base=32", "model.texture_resolution=2048",
                          // zero-width networks, optimisers and ADA settings that cannot run
                          "model.z_dim=0", "model.w_dim=0", "model.mapping_layers=0", "model.mbstd_group=0",
                          "train.lr_G=-1", "train.lr_D=0", "train.beta2=1", "train.r1_gamma=-1",
                          "train.pl_batch_shrink=0", "train.ema_kimg=-1", "data.threads=-2", "augment.p=2",
                          "augment.target=-1", "augment.interval=0",
                          // a run that cannot end, or ends before its first image
                          "run.total_kimg=inf", "run.total_kimg=1e-9", "run.kimg_per_tick=inf",
                          // values that crashed or trained on non-finite numbers to the end
                          "run.grid_images=0", "run.grid_images=-2", "run.seed=-3", "model.conv_clamp=-1",
                          "model.conv_clamp=nan", "model.texture_resolution=-64", "train.lr_G=inf",
                          "train.r1_gamma=inf",
                          // keys the trainer does not read: a typo would be ignored silently
                          "train.lr_g=0.1", "nonsense.key=1"}) {
    Config c = Config::load(preset_path("synth64"));
    c.set(bad);
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    try {
      parse_train_options(c);
      ADD_FAILURE() << bad;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(key.substr(key.find('.') + 1)), std::string::npos) << e.what();
    }
  }
}
