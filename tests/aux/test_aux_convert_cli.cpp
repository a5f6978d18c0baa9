// `facetex convert torch-state-dict` on files in the production layouts (made by make_aux_reference.py), with the
// commands docs/operations.md gives for the real files: each converts and is then loaded into facetex's network.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/aux/aux_reference.h"
#include "tests/support/fixtures.h"

using namespace facetex;
namespace fs = std::filesystem;

TEST(AuxConvertCli, ProductionFilesConvertAndLoad) {
  FACETEX_AUX_REFERENCE(ref);
  test::TempDir out;
  struct Case {
    std::string input, extra, class_name;
  };
  const std::vector<Case> cases = {{"params_test.pth", "", "DFRModel"},
                                   {"rignet_test.pth", "", "RigNet"},
                                   {"epoch_20.pth", "--key net_recon", "ReconNetWrapper"},
                                   {"pnet.pt", "", "PNet"},
                                   {"rnet.pt", "", "RNet"},
                                   {"onet.pt", "", "ONet"}};
  for (const auto& c : cases) {
    const test::CommandResult r = test::run_command(
        fmt::format("{} convert torch-state-dict {} {} --name net --class-name {} {}", FACETEX_BINARY_PATH,
                    (ref->dir / c.input).string(), (out / (c.input + ".h5")).string(), c.class_name, c.extra));
    EXPECT_EQ(r.exit_code, 0) << c.input << ": " << r.err;
    EXPECT_NE(r.out.find("loads into facetex's " + c.class_name), std::string::npos) << c.input << ": " << r.out;
  }
  // The wrong class for a file names the first tensor that does not fit (exit code 3: data error), and an existing
  // output file is left as it was (the result is checked before it replaces anything).
  const std::string before = test::read_bytes(out / "onet.pt.h5");
  const test::CommandResult r = test::run_command(
      fmt::format("{} convert torch-state-dict {} {} --name net --class-name ONet", FACETEX_BINARY_PATH,
                  (ref->dir / "rnet.pt").string(), (out / "onet.pt.h5").string()));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("conv1.weight has shape [28, 3, 3, 3] in the file, the network expects [32, 3, 3, 3]"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("is left as it was"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_bytes(out / "onet.pt.h5"), before);
  for (const auto& e : fs::directory_iterator(out.path()))
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
}
