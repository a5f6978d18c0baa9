// `facetex metrics ...`: wiring only; the metrics live in train/.
#include <cstdio>

#include "apps/cli.h"
#include "train/synth_metric.h"

namespace facetex::app {

void add_metrics_commands(Cli& cli) {
  CLI::App* metrics = cli.app().add_subcommand("metrics", "Quality metrics of trained networks");
  metrics->require_subcommand(1);
  CLI::App* synth = metrics->add_subcommand(
      "synth", "Synthetic world: distance of generated to ground-truth textures, at the start and now");
  cli.required(synth, "--run", "metrics.run", "Run folder of a training on a synthetic world");
  cli.on_run(synth, [](const Config& c) {
    const train::SynthReport r = train::evaluate_synth_run(c.require_string("metrics.run"));
    std::printf("init: kid %.5f colour %.5f\n", r.init.kid, r.init.colour);
    std::printf("now (kimg %.3f): kid %.5f colour %.5f\n", r.now_kimg, r.now.kid, r.now.colour);
    if (!r.plot.empty()) std::printf("plot: %s\n", r.plot.c_str());
    std::printf("synth_distance init=%.5f now=%.5f\n", r.init.total(), r.now.total());
    return 0;
  });
}

}  // namespace facetex::app
