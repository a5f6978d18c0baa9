// Any resolution 4..1024 and any channel configuration builds from init_kwargs and runs, with the reference's
// num_ws = 2*log2(R) - 2 and per-resolution channel counts min(channel_base / res, channel_max).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/factory.h"
#include "models/stylegan2/generator.h"

using namespace facetex;
using namespace facetex::models::stylegan2;

TEST(StyleGAN2Shapes, EveryResolutionFrom4To1024Builds) {
  at::manual_seed(3);
  for (int res = 4; res <= 1024; res *= 2) {
    SCOPED_TRACE(res);
    const nlohmann::json g = {{"z_dim", 16}, {"c_dim", 0}, {"w_dim", 16}, {"img_resolution", res}, {"img_channels", 3},
                              {"mapping_kwargs", {{"num_layers", 2}}},
                              {"synthesis_kwargs", {{"channel_base", 4 * res}, {"channel_max", 16}}}};
    Generator G(parse_generator_config(g.dump(), "G"));
    EXPECT_EQ(G.num_ws(), 2 * static_cast<int>(std::log2(res)) - 2);
    EXPECT_EQ(G.config().synthesis.channels(res), 4);
    G.eval();
    at::NoGradGuard no_grad;
    at::Tensor img = G.forward(at::randn({2, 16}));
    EXPECT_EQ(img.sizes(), (std::vector<int64_t>{2, 3, res, res}));
    EXPECT_TRUE(img.isfinite().all().item<bool>());
    if (res >= 8) {  // the reference's resnet discriminator needs at least one block above the 4x4 epilogue
      const nlohmann::json d = {{"c_dim", 0}, {"img_resolution", res}, {"img_channels", 3}, {"channel_base", 4 * res},
                                {"channel_max", 16}, {"epilogue_kwargs", {{"mbstd_group_size", 2}}}};
      Discriminator D(parse_discriminator_config(d.dump(), "D"));
      EXPECT_EQ(D.forward(img).sizes(), (std::vector<int64_t>{2, 1}));
    }
  }
}

TEST(StyleGAN2Shapes, BadInitKwargsAreDataErrorsNamingTheKey) {
  EXPECT_THROW(parse_generator_config(R"({"img_resolution": 48})", "G"), DataError);
  EXPECT_THROW(parse_generator_config(R"({"c_dim": 10})", "G"), DataError);
  EXPECT_THROW(parse_generator_config(R"({"synthesis_kwargs": {"architecture": "fancy"}})", "G"), DataError);
  EXPECT_THROW(parse_discriminator_config("not json", "D"), DataError);
  try {
    parse_generator_config(R"({"z_dim": "big"})", "weights.h5 /G");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("weights.h5 /G: init_kwargs 'z_dim'"), std::string::npos) << e.what();
  }
  // Values the parser takes but the constructors refuse (zero channels at the top block, an unknown activation, an
  // unknown class) are data errors naming the file too.
  const auto build_error = [](const std::string& class_name, const std::string& kwargs) {
    models::NetworkWeights w;
    w.class_name = class_name;
    w.init_kwargs = kwargs;
    try {
      build_and_load(w, "weights.h5 /G");
    } catch (const DataError& e) {
      return std::string(e.what());
    } catch (const std::exception& e) {
      return std::string("WRONG EXCEPTION TYPE: ") + e.what();
    }
    return std::string("NO ERROR");
  };
  std::string err = build_error("Generator", R"({"img_resolution": 64, "synthesis_kwargs": {"channel_base": 32}})");
  EXPECT_NE(err.find("weights.h5 /G: "), std::string::npos) << err;
  EXPECT_NE(err.find("channel_base 32"), std::string::npos) << err;
  err = build_error("Generator", R"({"img_resolution": 8, "mapping_kwargs": {"activation": "gelu"}})");
  EXPECT_EQ(err.rfind("weights.h5 /G: ", 0), 0u) << err;
  EXPECT_NE(err.find("unknown activation 'gelu'"), std::string::npos) << err;
  err = build_error("Encoder", "{}");
  EXPECT_NE(err.find("class 'Encoder' is not a StyleGAN2 network"), std::string::npos) << err;
}

// fp16_channels_last (the reference's --nhwc) is read from the reference's kwargs and written back only when set, so
// checkpoints of NHWC runs reload as NHWC and every other init_kwargs string stays as it was.
TEST(StyleGAN2Shapes, Fp16ChannelsLastRoundTripsThroughInitKwargs) {
  const GeneratorConfig g0 = parse_generator_config(R"({"img_resolution": 32})", "G");
  EXPECT_FALSE(g0.synthesis.fp16_channels_last);
  EXPECT_EQ(to_init_kwargs(g0).find("fp16_channels_last"), std::string::npos);
  const GeneratorConfig g = parse_generator_config(
      R"({"img_resolution": 32, "synthesis_kwargs": {"num_fp16_res": 2, "fp16_channels_last": true}})", "G");
  EXPECT_TRUE(g.synthesis.fp16_channels_last);
  EXPECT_TRUE(parse_generator_config(to_init_kwargs(g), "G").synthesis.fp16_channels_last);
  const DiscriminatorConfig d = parse_discriminator_config(
      R"({"img_resolution": 32, "block_kwargs": {"fp16_channels_last": true}})", "D");
  EXPECT_TRUE(d.fp16_channels_last);
  EXPECT_TRUE(parse_discriminator_config(to_init_kwargs(d), "D").fp16_channels_last);
  EXPECT_FALSE(parse_discriminator_config(R"({"img_resolution": 32})", "D").fp16_channels_last);
}
