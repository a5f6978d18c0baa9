// `facetex generate ...`: wiring only; the generation jobs live in train/generate.h.
#include <c10/core/Device.h>
#include <ATen/Context.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "apps/cli.h"
#include "cluster/preemption.h"
#include "core/error.h"
#include "core/partition.h"
#include "models/face3d/morphable_model.h"
#include "train/generate.h"

namespace facetex::app {

namespace {

constexpr const char* kSeedsHelp =
    "Seeds: ranges and lists, e.g. 0-99 or 1,5,9 or 0-3,10. z = NumPy RandomState(seed).randn(z_dim) as the public "
    "scripts; results depend on the seed only (not on --batch or --part)";

void add_common(Cli& cli, CLI::App* cmd, const std::string& prefix, const std::string& noise_default,
                const std::string& trunc_default) {
  cli.required(cmd, "--seeds", prefix + ".seeds", kSeedsHelp);
  cli.required(cmd, "--out", prefix + ".out", "Output folder (created); finished seeds already there are skipped");
  cli.option(cmd, "--trunc", prefix + ".trunc", "Truncation psi (w_avg + psi (w - w_avg))", trunc_default);
  cli.option(cmd, "--noise-mode", prefix + ".noise_mode",
             "Synthesis noise: const (stored maps) | random (per seed: seeded with the seed) | none", noise_default);
  cli.option(cmd, "--batch", prefix + ".batch", "Seeds per forward pass", "4");
  cli.option(cmd, "--device", prefix + ".device", "cpu or cuda", "cpu");
  cli.option(cmd, "--part", prefix + ".part", "Generate part i of N of the seeds (Slurm array task)", "0/1");
}

// A single seed ("--seeds 7", or seeds = 7 in a config file) arrives as an integer.
std::string seeds_text(const Config& c, const std::string& key) {
  try {
    return c.require_string(key);
  } catch (const UsageError&) {
    if (auto v = c.get_int(key)) return std::to_string(*v);
    throw;
  }
}

train::GenerateCommon read_common(const Config& c, const std::string& prefix, const std::string& noise_default,
                                  double trunc_default) {
  train::GenerateCommon g;
  const std::vector<uint32_t> seeds = train::parse_seeds(seeds_text(c, prefix + ".seeds"));
  const Part part = parse_part(c.get_string(prefix + ".part", "0/1"));
  const Range r = part_range(static_cast<int64_t>(seeds.size()), part);
  g.seeds.assign(seeds.begin() + r.begin, seeds.begin() + r.end);
  g.out = c.require_string(prefix + ".out");
  FACETEX_CHECK_USAGE(!std::filesystem::exists(g.out) || std::filesystem::is_directory(g.out), "--out {}: not a folder",
                      g.out.string());
  g.truncation_psi = c.get_double(prefix + ".trunc", trunc_default);
  FACETEX_CHECK_USAGE(std::isfinite(g.truncation_psi), "--trunc must be a finite number, got {}", g.truncation_psi);
  g.noise = models::stylegan2::parse_noise_mode(c.get_string(prefix + ".noise_mode", noise_default));
  g.batch = c.get_int(prefix + ".batch", 4);
  FACETEX_CHECK_USAGE(g.batch >= 1, "--batch must be at least 1, got {}", g.batch);
  const std::string device = device_choice(c, prefix + ".device", /*indexed=*/false);
  g.device = c10::Device(device == "cuda" ? c10::kCUDA : c10::kCPU);
  cluster::install_preemption_handlers();
  g.stop = [] { return cluster::preemption_requested(); };
  return g;
}

int finish(const train::GenerateResult& r, const std::string& out) {
  std::printf("generated %lld, skipped %lld (already there) -> %s\n", static_cast<long long>(r.written),
              static_cast<long long>(r.skipped), out.c_str());
  if (r.stopped) throw PreemptedError("generate: stopped by a signal after the current batch; rerun to continue");
  return 0;
}

}  // namespace

void add_generate_commands(Cli& cli) {
  CLI::App* gen = cli.app().add_subcommand(
      "generate", "Generation jobs (spec §7.4): textured 3D faces with coupled geometry, and (png, ws) pairs");
  gen->require_subcommand(1);

  CLI::App* tex = gen->add_subcommand(
      "textured",
      "Per seed: the texture G_ema(z) on the face model posed by DFR(2D G mapping(z)) — seedNNNN.obj/.mtl/.png — "
      "and seedNNNN_front.png (texture on the unposed mesh, on white). Same z for both generators, no style mixing "
      "(generate_3d.py). Exit codes: 0 ok, 2 bad arguments, 3 missing/bad input file, 75 stopped by SIGTERM/SIGUSR1");
  cli.required(tex, "--checkpoint", "generate.checkpoint", "Texture generator: checkpoint or weight file (G_ema, else G)");
  cli.required(tex, "--background-generator", "generate.background_generator",
               "The frozen 2D generator (e.g. converted ffhq.pkl; G_ema, else G)");
  cli.required(tex, "--dfr", "generate.dfr", "DFR weight file (W+ -> 257 Deep3DFaceRecon coefficients)");
  cli.required(tex, "--face-model", "generate.face_model", "MAT:UV — the morphable model .mat and its per-vertex UV .npy");
  cli.option(tex, "--render-resolution", "generate.render_resolution",
             "Side of seedNNNN_front.png (16..4096; 0 = the texture G's resolution)", "0");
  add_common(cli, tex, "generate", "const", "1.0");
  cli.on_run(tex, [](const Config& c) {
    train::TexturedOptions o;
    o.common = read_common(c, "generate", "const", 1.0);
    o.checkpoint = c.require_string("generate.checkpoint");
    o.background_generator = c.require_string("generate.background_generator");
    o.dfr = c.require_string("generate.dfr");
    o.render_resolution = c.get_int("generate.render_resolution", 0);
    FACETEX_CHECK_USAGE(o.render_resolution == 0 || (o.render_resolution >= 16 && o.render_resolution <= 4096),
                        "--render-resolution must be 0 (the texture's) or 16..4096, got {}", o.render_resolution);
    std::tie(o.face_model_mat, o.face_model_uv) =
        models::face3d::split_model_files(c.require_string("generate.face_model"), "--face-model");
    return finish(train::generate_textured(o), o.common.out.string());
  });

  CLI::App* pairs = gen->add_subcommand(
      "pairs",
      "The public generate script's (image, ws) pairs, DFR/RigNet training data: seedNNNN.png and seedNNNN.npz "
      "(key ws: float32 (1, num_ws, w_dim), after truncation and style mixing). Exit codes as for textured");
  cli.required(pairs, "--generator", "generate.generator", "The 2D generator's weight file (e.g. converted ffhq.pkl)");
  cli.option(pairs, "--network", "generate.network",
             "Generator group to use: G as generate.py (falls back to G_ema when the file has no G), or G_ema", "G");
  cli.option(pairs, "--style-mixing", "generate.style_mixing",
             "Style-mixing probability (generate.py: 0.9; cutoff and mixing z from a generator seeded with the seed)",
             "0.9");
  add_common(cli, pairs, "generate", "random", "1.0");
  cli.on_run(pairs, [](const Config& c) {
    train::PairsOptions o;
    o.common = read_common(c, "generate", "random", 1.0);
    o.generator = c.require_string("generate.generator");
    o.style_mixing = c.get_double("generate.style_mixing", 0.9);
    o.network = c.get_string("generate.network", "G");
    return finish(train::generate_pairs(o), o.common.out.string());
  });
}

}  // namespace facetex::app
