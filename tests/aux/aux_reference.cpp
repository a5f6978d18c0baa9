#include "tests/aux/aux_reference.h"

#include <fmt/format.h>

#include <memory>
#include <vector>

#include "core/h5.h"
#include "core/version.h"
#include "tests/support/fixtures.h"
#include "tests/support/parity_file.h"

namespace fs = std::filesystem;

namespace facetex::test {

namespace {

struct State {
  std::unique_ptr<TempDir> dir;
  AuxReference ref;
  std::string skip, error;
};

State make() {
  State s;
  const std::string python = "/usr/bin/python3";
  if (run_command(python + " -c 'import torch, numpy, h5py'").exit_code != 0) {
    s.skip = python + " lacks torch/numpy/h5py (Debian: python3-torch python3-numpy python3-h5py)";
    return s;
  }
  s.dir = std::make_unique<TempDir>();
  s.ref.dir = s.dir->path();
  const std::string src = FACETEX_SOURCE_DIR;
  const std::string d = s.ref.dir.string();
  CommandResult r = run_command(fmt::format("{} {}/tests/aux/make_aux_reference.py {}", python, src, d));
  if (r.exit_code != 0) {
    s.error = "make_aux_reference.py failed: " + r.err;
    return s;
  }
  // The production layouts: plain state dicts, and Deep3DFaceRecon's checkpoint dict with the net under 'net_recon'.
  const std::vector<std::vector<std::string>> conversions = {
      {"params_test.pth", "dfr"}, {"rignet_test.pth", "rignet"}, {"epoch_20.pth", "net_recon", "--key net_recon"},
      {"pnet.pt", "pnet"},        {"rnet.pt", "rnet"},           {"onet.pt", "onet"}};
  for (const auto& c : conversions) {
    r = run_command(fmt::format("{} {}/tools/convert_torch_state_dict.py {}/{} {}/{}.h5 --name {} {}", python, src, d,
                                c[0], d, c[1], c[1], c.size() > 2 ? c[2] : ""));
    if (r.exit_code != 0) {
      s.error = fmt::format("converting {} failed: {}", c[0], r.err);
      return s;
    }
  }
  return s;
}

}  // namespace

at::Tensor AuxReference::tensor(const std::string& name) const {
  h5::Id file = h5::open_file((dir / "reference.h5").string());
  return read_tensor(file, name);
}

const AuxReference* aux_reference(std::string* skip, std::string* error) {
  static State state = make();  // once per process; the folder goes when the process ends
  *skip = state.skip;
  *error = state.error;
  return state.skip.empty() && state.error.empty() ? &state.ref : nullptr;
}

}  // namespace facetex::test
