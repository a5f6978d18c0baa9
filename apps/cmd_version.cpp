// `facetex version`: what this binary was built with.
#include <torch/version.h>
#include <fmt/format.h>

#include <cstdio>

#include "apps/cli.h"
#include "core/version.h"
#include "kernels/image_normalize.h"

namespace facetex::app {

void add_version_command(Cli& cli) {
  CLI::App* cmd = cli.app().add_subcommand("version", "Print the version and the build's optional components");
  cli.on_run(cmd, [](const Config&) {
#ifdef FACETEX_HAVE_CUDA
    const bool cuda = true;
#else
    const bool cuda = false;
#endif
#ifdef FACETEX_HAVE_NCCL
    const bool nccl = true;
#else
    const bool nccl = false;
#endif
#ifdef FACETEX_HAVE_PROMETHEUS
    const bool prometheus = true;
#else
    const bool prometheus = false;
#endif
    std::printf("facetex %s\nlibtorch %s\ncuda kernels compiled: %s, usable now: %s\nnccl: %s\nprometheus-cpp: %s\n",
                FACETEX_VERSION, TORCH_VERSION, cuda ? "yes" : "no", kernels::cuda_kernels_available() ? "yes" : "no",
                nccl ? "yes" : "no", prometheus ? "yes" : "no");
    return 0;
  });
}

}  // namespace facetex::app
