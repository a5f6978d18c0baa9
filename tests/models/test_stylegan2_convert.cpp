// End to end: a network pickle in the reference's structure (built by tests/tools/snapshot_from_parity.py from the
// parity file's parameters) -> `facetex convert stylegan2-pkl` -> weight file -> facetex's G and D reproduce the
// parity outputs. Proves the converter's names, shapes and values are exactly what the networks load.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/h5.h"
#include "core/version.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/factory.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "tests/support/parity_compare.h"
#include "tests/support/parity_file.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::models;
using namespace facetex::models::stylegan2;

TEST(StyleGAN2Convert, ReferencePickleConvertsAndReproducesTheParityOutputs) {
  const std::string parity = test::parity_file_path();
  h5::Id file = h5::open_file(parity);
  if (!h5::exists(file, "loss_terms")) GTEST_SKIP() << "no loss_terms group in " << parity;
  if (std::system("/usr/bin/python3 -c 'import torch, h5py' 2>/dev/null") != 0) {
    GTEST_SKIP() << "python3-torch / python3-h5py missing (scripts/setup.sh installs them)";
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("facetex-convert-{}", ::getpid());
  fs::create_directories(dir);
  const std::string pkl = (dir / "snapshot.pkl").string(), h5 = (dir / "snapshot.h5").string();
  const std::string src = FACETEX_SOURCE_DIR;
  ASSERT_EQ(std::system(fmt::format("/usr/bin/python3 {}/tests/tools/snapshot_from_parity.py {} {}", src, parity, pkl).c_str()), 0);
  ASSERT_EQ(std::system(fmt::format("/usr/bin/python3 {}/tools/convert_stylegan2_pkl.py {} {} >/dev/null", src, pkl, h5).c_str()), 0);

  auto weights = read_weight_file(h5);
  ASSERT_TRUE(weights.count("G") && weights.count("D"));
  auto G = std::dynamic_pointer_cast<Generator>(build_and_load(weights.at("G"), h5 + " /G"));
  auto D = std::dynamic_pointer_cast<Discriminator>(build_and_load(weights.at("D"), h5 + " /D"));
  ASSERT_TRUE(G && D);
  G->train();
  D->train();
  h5::Id in = h5::open_group(file, "loss_terms/inputs"), out = h5::open_group(file, "loss_terms/outputs");
  SynthesisOptions o;
  o.noise_mode = NoiseMode::kConst;
  at::NoGradGuard no_grad;
  at::Tensor img = G->forward(test::read_tensor(in, "z"), {}, o);
  at::Tensor logits = D->forward(img);
  EXPECT_LE(test::normalised_max_error(img, test::read_tensor(out, "gen_img")), 1e-4);
  EXPECT_LE(test::normalised_max_error(logits, test::read_tensor(out, "gen_logits")), 1e-4);
  fs::remove_all(dir);
}
