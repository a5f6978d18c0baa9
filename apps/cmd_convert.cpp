// `facetex convert ...`: published weights -> facetex weight files. The pickle and state-dict readers are Python
// tools (tools/*.py: a restricted unpickler over numpy + h5py, no torch and no reference code); this command runs
// them and then proves the result loads into facetex's own networks.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "core/atomic_file.h"
#include "core/env_param.h"
#include "core/error.h"
#include "core/version.h"
#include "models/aux/aux_factory.h"
#include "models/stylegan2/factory.h"
#include "models/weights/weight_file.h"

extern char** environ;

namespace fs = std::filesystem;

namespace facetex::app {
namespace {

// The Python interpreter with numpy + h5py: FACETEX_PYTHON, else Debian's /usr/bin/python3 (a pyenv or venv python
// earlier on PATH usually lacks the Debian packages), else python3 from PATH.
std::string python() {
  std::string p = env_string("FACETEX_PYTHON", "");
  if (!p.empty()) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

fs::path tools_dir() {
  return env_string("FACETEX_TOOLS_DIR", std::string(FACETEX_SOURCE_DIR) + "/tools");
}

// Runs argv (no shell, so paths need no quoting) and returns its exit code; its output goes to ours.
int run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  FACETEX_CHECK_RUNTIME(rc == 0, "cannot start {}: {}", argv[0], std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Loads every network of the file whose class facetex implements (StyleGAN2 networks; the auxiliary networks by
// the class name given to torch-state-dict --class-name) and prints what it found.
int check(const std::string& path) {
  int loaded = 0;
  for (const auto& [name, w] : models::read_weight_file(path)) {
    const std::string cls = w.class_name.substr(w.class_name.rfind('.') == std::string::npos ? 0 : w.class_name.rfind('.') + 1);
    if (cls != "Generator" && cls != "Discriminator" && cls != "MappingNetwork") {
      if (auto aux = models::aux::load_aux_network(w, path + " /" + name)) {
        std::printf("%s: %s, %lld parameters, %zu tensors: loads into facetex's %s\n", name.c_str(),
                    w.class_name.c_str(), static_cast<long long>(models::stylegan2::parameter_count(*aux)),
                    w.tensors.size(), cls.c_str());
        ++loaded;
        continue;
      }
      std::printf("%s: %s, %zu tensors (not a network facetex implements; not checked)\n", name.c_str(),
                  w.class_name.empty() ? "no class name" : w.class_name.c_str(), w.tensors.size());
      continue;
    }
    auto net = models::stylegan2::build_and_load(w, path + " /" + name);
    std::printf("%s: %s, %lld parameters, %zu tensors: loads into facetex's %s\n", name.c_str(), w.class_name.c_str(),
                static_cast<long long>(models::stylegan2::parameter_count(*net)), w.tensors.size(), cls.c_str());
    ++loaded;
  }
  return loaded;
}

// Runs a converter (argv[3] is its output) into a temporary file beside `out`, loads the result (check) when
// `verify`, and only then renames it over `out`: a failed conversion or check never damages an existing file.
int convert_staged(std::vector<std::string> argv, const fs::path& out, bool verify) {
  std::error_code ec;
  FACETEX_CHECK_DATA(fs::is_regular_file(argv[2], ec), "{}: no such file", argv[2]);
  const fs::path staged = out.parent_path() / fmt::format(".{}{}{}", out.filename().string(), kPartialMarker, ::getpid());
  struct RemoveStaged {
    fs::path path;
    ~RemoveStaged() {
      std::error_code ec;
      fs::remove(path, ec);
    }
  } cleanup{staged};
  argv[3] = staged.string();
  if (int rc = run(argv); rc != 0) return rc;
  if (verify) {
    try {
      check(staged);
    } catch (const Error& e) {
      throw DataError(fmt::format("{}: the converted networks do not load into facetex ({}); {} is left as it was",
                                  argv[2], e.what(), out.string()));
    }
  }
  fs::rename(staged, out, ec);
  FACETEX_CHECK_RUNTIME(!ec, "{}: cannot rename the converted file into place: {}", out.string(), ec.message());
  std::printf("-> %s%s\n", out.string().c_str(), verify ? " (loaded by facetex)" : "");
  return 0;
}

}  // namespace

void add_convert_commands(Cli& cli) {
  CLI::App* convert = cli.app().add_subcommand("convert", "Convert published weights into facetex weight files (HDF5)");
  convert->require_subcommand(1);

  CLI::App* pkl = convert->add_subcommand("stylegan2-pkl", "StyleGAN2-ADA network pickle (G, D, G_ema) -> .h5");
  cli.required(pkl, "input", "convert.input", "Network pickle (network-snapshot-*.pkl)");
  cli.required(pkl, "output", "convert.output", "Output weight file (.h5)");
  cli.option(pkl, "--networks", "convert.networks", "Comma-separated networks to convert", "all in the pickle");
  cli.on_run(pkl, [](const Config& c) {
    std::vector<std::string> argv = {python(), (tools_dir() / "convert_stylegan2_pkl.py").string(),
                                     c.require_string("convert.input"), c.require_string("convert.output")};
    if (auto n = c.get_string("convert.networks")) argv.insert(argv.end(), {"--networks", *n});
    return convert_staged(argv, c.require_string("convert.output"), /*verify=*/true);
  });

  CLI::App* sd = convert->add_subcommand("torch-state-dict", "PyTorch state dict (.pth/.pt) -> .h5 (auxiliary networks)");
  cli.required(sd, "input", "convert.input", "torch.save()'d state dict");
  cli.required(sd, "output", "convert.output", "Output weight file (.h5)");
  cli.required(sd, "--name", "convert.name", "Network (group) name in the output, e.g. reconnet");
  cli.option(sd, "--prefix-strip", "convert.prefix_strip", "Strip this prefix from every key (e.g. module.)");
  cli.option(sd, "--class-name", "convert.class_name",
             "class_name attribute to record; DFRModel, RigNet, ReconNetWrapper, PNet, RNet or ONet also loads the "
             "result into facetex's network");
  cli.option(sd, "--init-kwargs", "convert.init_kwargs", "init_kwargs JSON to record", "{}");
  cli.option(sd, "--key", "convert.key", "Entry of a wrapping dict that holds the state dict (e.g. net_recon)",
             "the top level, else 'state_dict', else 'model'");
  cli.on_run(sd, [](const Config& c) {
    std::vector<std::string> argv = {python(), (tools_dir() / "convert_torch_state_dict.py").string(),
                                     c.require_string("convert.input"), c.require_string("convert.output"), "--name",
                                     c.require_string("convert.name")};
    if (auto v = c.get_string("convert.prefix_strip")) argv.insert(argv.end(), {"--prefix-strip", *v});
    if (auto v = c.get_string("convert.class_name")) argv.insert(argv.end(), {"--class-name", *v});
    if (auto v = c.get_string("convert.init_kwargs")) argv.insert(argv.end(), {"--init-kwargs", *v});
    if (auto v = c.get_string("convert.key")) argv.insert(argv.end(), {"--key", *v});
    // A class facetex implements (--class-name DFRModel, RigNet, ...) is loaded to prove the file works.
    return convert_staged(argv, c.require_string("convert.output"), c.get_string("convert.class_name").has_value());
  });

  CLI::App* chk = convert->add_subcommand("check", "Load every network of a weight file that facetex implements");
  cli.required(chk, "file", "convert.file", "facetex weight file (.h5)");
  cli.on_run(chk, [](const Config& c) {
    FACETEX_CHECK_DATA(check(c.require_string("convert.file")) > 0, "{}: holds no network facetex implements",
                       c.require_string("convert.file"));
    return 0;
  });
}

}  // namespace facetex::app
