// `facetex train`: wiring only; the loop lives in train/.
#include <cstdio>

#include "apps/cli.h"
#include "core/error.h"
#include "train/train_options.h"
#include "train/training_loop.h"

namespace facetex::app {

void add_train_commands(Cli& cli) {
  CLI::App* train = cli.app().add_subcommand(
      "train", "Train the texture GAN (or, with model.mode = image, a plain StyleGAN2-ADA); resumes automatically");
  cli.option(train, "--preset", "run.preset", "Built-in preset: synth64 (CPU smoke), stylegan2-256, auto, paper1024",
             "synth64");
  cli.option(train, "--run", "run.dir", "Run folder (config.toml, log.txt, stats.jsonl, grids, checkpoints)");
  cli.option(train, "--shards", "data.shards", "Training data: a folder written by `facetex data pack`");
  cli.option(train, "--kimg", "run.total_kimg", "Stop after this many thousand real images");
  cli.option(train, "--device", "run.device", "cpu or cuda");
  cli.option(train, "--seed", "run.seed", "Random seed (network init, latents, data order)");
  cli.on_run(train, [](const Config& user) {
    // The preset is the base; --config, --set and flags override it.
    Config config = Config::load(train::preset_path(user.get_string("run.preset", "synth64")));
    config.merge(user);
    const train::TrainOptions options = train::parse_train_options(config);
    const train::TrainResult r = train::run_training(options, config);
    if (r.rank == 0) {
      std::printf("train: %s at kimg %.3f after %lld iterations%s\n", r.exit_code == 0 ? "finished" : "preempted",
                  r.cur_nimg / 1000.0, static_cast<long long>(r.steps_run), r.resumed ? " (resumed)" : "");
    }
    return r.exit_code;
  });
}

}  // namespace facetex::app
