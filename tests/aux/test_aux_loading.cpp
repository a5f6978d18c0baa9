// Loading errors: a weight file whose names or shapes do not match the network must say which tensor and which
// shapes, and a file with several groups must say which groups it has (no Python needed).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "core/error.h"
#include "models/aux/dfr_model.h"
#include "models/aux/mtcnn_nets.h"
#include "models/aux/recon_net.h"
#include "models/aux/rig_net.h"
#include "models/weights/weight_file.h"
#include "tests/support/fixtures.h"

using namespace facetex;
using namespace facetex::models;
using namespace facetex::models::aux;

namespace {

// The message of the DataError `load` throws (empty when it throws nothing).
std::string data_error(const std::function<void()>& load) {
  try {
    load();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

void write(const std::filesystem::path& path, const std::map<std::string, NetworkWeights>& networks) {
  write_weight_file(path, networks, "test", "test_aux_loading");
}

void rename_tensor(NetworkWeights& w, const std::string& from, const std::string& to) {
  for (auto& [name, t] : w.tensors) {
    if (name == from) name = to;
  }
}

}  // namespace

TEST(AuxLoading, RoundTripThroughAWeightFile) {
  test::TempDir dir;
  DFRModel dfr(4);
  {
    at::NoGradGuard no_grad;
    for (auto& p : dfr.parameters()) p.normal_();
  }
  write(dir / "dfr.h5", {{"dfr", network_state(dfr, "DFRModel", "{}")}});
  auto loaded = load_dfr_model(dir / "dfr.h5");
  EXPECT_EQ(loaded->num_ws(), 4);
  const at::Tensor ws = at::randn({2, 4, 512});
  EXPECT_TRUE(at::equal(loaded->forward(ws), dfr.forward(ws)));
}

TEST(AuxLoading, MissingTensorIsNamedWithItsExpectedShape) {
  test::TempDir dir;
  NetworkWeights w = network_state(DFRModel(10), "DFRModel", "{}");
  rename_tensor(w, "L2.weight", "L2.weights");
  write(dir / "dfr.h5", {{"dfr", w}});
  const std::string msg = data_error([&] { load_dfr_model(dir / "dfr.h5"); });
  EXPECT_NE(msg.find("dfr.h5 /dfr: L2.weight is missing from the file (the network expects shape [1024, 1024])"),
            std::string::npos)
      << msg;
}

TEST(AuxLoading, MismatchedShapeIsNamed) {
  test::TempDir dir;
  NetworkWeights w = network_state(RigNet(3), "RigNet", "{}");
  for (auto& [name, t] : w.tensors) {
    if (name == "decoder.1.weight") t = at::zeros({512, 288});  // p_edit with 256 instead of 257 coefficients
  }
  write(dir / "rignet.h5", {{"rignet", w}});
  const std::string msg = data_error([&] { load_rig_net(dir / "rignet.h5"); });
  EXPECT_NE(msg.find("decoder.1.weight has shape [512, 288] in the file, the network expects [512, 289]"),
            std::string::npos)
      << msg;
}

TEST(AuxLoading, UnexpectedAndMissingReconNetTensorsAreNamed) {
  test::TempDir dir;
  NetworkWeights w = network_state(ReconNet(), "ReconNetWrapper", "{}");
  w.tensors.emplace_back("backbone.fc.weight", at::zeros({257, 2048}));  // a use_last_fc=True checkpoint
  write(dir / "extra.h5", {{"net_recon", w}});
  std::string msg = data_error([&] { load_recon_net(dir / "extra.h5"); });
  EXPECT_NE(msg.find("the file has backbone.fc.weight [257, 2048], which the network does not have"),
            std::string::npos)
      << msg;

  w.tensors.pop_back();
  rename_tensor(w, "backbone.layer3.0.downsample.1.running_var", "backbone.layer3.0.downsample.1.running_variance");
  write(dir / "missing.h5", {{"net_recon", w}});
  msg = data_error([&] { load_recon_net(dir / "missing.h5"); });
  EXPECT_NE(msg.find("backbone.layer3.0.downsample.1.running_var is missing from the file (the network expects "
                     "shape [1024])"),
            std::string::npos)
      << msg;
}

TEST(AuxLoading, WrongNetworkFileSaysWhatIsMissing) {
  test::TempDir dir;
  write(dir / "rnet.h5", {{"rnet", network_state(RNet(), "RNet", "{}")}});
  // An RNet file given as DFR weights: the tensor that sizes the network is missing.
  EXPECT_NE(data_error([&] { load_dfr_model(dir / "rnet.h5"); }).find("L1.weight is missing"), std::string::npos);
  EXPECT_NE(data_error([&] { load_rig_net(dir / "rnet.h5"); }).find("encoder.0.weight is missing"),
            std::string::npos);
  EXPECT_NE(data_error([&] { load_onet(dir / "rnet.h5"); })
                .find("conv1.weight has shape [28, 3, 3, 3] in the file, the network expects [32, 3, 3, 3]"),
            std::string::npos);
}

TEST(AuxLoading, SeveralGroupsNeedANetworkName) {
  test::TempDir dir;
  write(dir / "mtcnn.h5", {{"pnet", network_state(PNet(), "PNet", "{}")},
                           {"onet", network_state(ONet(), "ONet", "{}")}});
  const std::string msg = data_error([&] { load_pnet(dir / "mtcnn.h5"); });
  EXPECT_NE(msg.find("expected exactly one network group, found 2"), std::string::npos) << msg;
  EXPECT_NO_THROW(load_pnet(dir / "mtcnn.h5", "pnet"));
  EXPECT_NE(data_error([&] { load_pnet(dir / "mtcnn.h5", "rnet"); }).find("no network 'rnet'"), std::string::npos);
}
