// `facetex reconstruct`: batched texture recovery of photos (train/reconstruct.h). Wiring only.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "apps/cli.h"
#include "apps/face_front_end.h"
#include "core/error.h"
#include "core/partition.h"
#include "core/version.h"
#include "train/annotate.h"
#include "train/reconstruct.h"

namespace facetex::app {
namespace {

int run_reconstruct(const Config& c) {
  train::register_reconstruct_metrics();  // the family is exported even by a run with nothing to do
  train::ReconstructOptions o;
  o.checkpoint = c.require_string("reconstruct.checkpoint");
  o.inputs = c.require_string("reconstruct.inputs");
  o.out = c.require_string("reconstruct.out");
  o.network = c.get_string("reconstruct.network", "G_ema");
  o.part = parse_part(c.get_string("reconstruct.part", "0/1"));
  o.batch = static_cast<int>(c.get_int("reconstruct.batch", 1));
  o.modconv = train::parse_modconv_path(c.get_string("reconstruct.modconv", "auto"));
  o.io_threads = static_cast<int>(c.get_int("reconstruct.io_threads", 0));
  FACETEX_CHECK_USAGE(o.io_threads >= 0, "--io-threads must be >= 0 (0: one per hardware thread)");
  o.schedule.steps = static_cast<int>(c.get_int("reconstruct.steps", o.schedule.steps));
  o.schedule.w_avg_samples = static_cast<int>(c.get_int("reconstruct.w_avg_samples", o.schedule.w_avg_samples));
  o.schedule.regularize_noise_weight =
      c.get_double("reconstruct.noise_weight", o.schedule.regularize_noise_weight);
  o.crop_resolution = static_cast<int>(c.get_int("reconstruct.crop_resolution", o.crop_resolution));
  o.max_pixels = c.get_int("reconstruct.max_pixels", o.max_pixels);
  o.recon_weights = c.get_string("reconstruct.recon_weights", "");
  o.lpips_vgg = c.get_string("reconstruct.lpips_vgg", "");
  o.lpips_batch = static_cast<int>(c.get_int("reconstruct.lpips_batch", o.lpips_batch));
  o.device = device_choice(c, "reconstruct.device", /*indexed=*/true);
  o.seed = c.get_uint("reconstruct.seed", 0);
  o.overwrite = c.get_bool("reconstruct.overwrite", false);
  FACETEX_CHECK_USAGE(o.max_pixels > 0, "--max-pixels must be > 0");
  const std::string assets = assets_root(c, "reconstruct.assets");
  FaceFrontEnd front_end = face_front_end(c, "reconstruct", c.get_string("reconstruct.model", "canonical"), assets);
  o.id_weight = c.get_double("reconstruct.id_weight", 0.0);
  o.face_api = c.get_string("reconstruct.face_api", (std::filesystem::path(assets) / "face-api").string());
  o.model = std::move(front_end.model.model);
  o.model_name = front_end.model.name;
  o.landmarks = std::move(front_end.landmarks);
  const auto r = train::reconstruct(o);
  std::printf("reconstruct: %lld inputs in part %s: %lld ok, %lld no face, %lld bad input, %lld errors, %lld "
              "finished earlier; LPIPS %s; %.1f s (prepare %.1f s, projection %.1f s, outputs %.1f s)%s -> %s\n",
              static_cast<long long>(r.inputs), o.part.str().c_str(), static_cast<long long>(r.ok),
              static_cast<long long>(r.no_face), static_cast<long long>(r.bad_input), static_cast<long long>(r.error),
              static_cast<long long>(r.skipped), r.lpips ? "on" : "off", r.seconds, r.prepare_seconds,
              r.projection_seconds, r.output_seconds, r.preempted ? "; PREEMPTED" : "",
              r.manifest_path.string().c_str());
  return r.preempted ? static_cast<int>(ExitCode::kPreempted) : 0;
}

}  // namespace

void add_reconstruct_command(Cli& cli) {
  CLI::App* cmd = cli.app().add_subcommand(
      "reconstruct", "Recover UV textures of photos by projection into a texture generator (batched; spec §7)");
  cli.required(cmd, "--checkpoint", "reconstruct.checkpoint", "Checkpoint or weight file with the texture G (G_ema)");
  cli.required(cmd, "--inputs", "reconstruct.inputs", "Folder of photos (recursive), one photo, or a packed dataset folder");
  cli.required(cmd, "--out", "reconstruct.out", "Output folder: <name>/ per photo and manifest.jsonl");
  cli.option(cmd, "--part", "reconstruct.part", "Process part i of N of the sorted inputs (Slurm array task)", "0/1");
  cli.option(cmd, "--batch", "reconstruct.batch", "Photos optimised together", "1");
  cli.option(cmd, "--modconv", "reconstruct.modconv",
             "Modulated convolutions: grouped (per-image weights) | split (shared weight, scaled activations) | auto "
             "(grouped for one image, split for a batch)", "auto");
  cli.option(cmd, "--io-threads", "reconstruct.io_threads",
             "Threads for decoding, landmarks and fit before a batch and for writing its outputs (0: one per hardware "
             "thread)", "0");
  cli.option(cmd, "--steps", "reconstruct.steps", "Optimisation steps per photo", "1000");
  cli.option(cmd, "--w-avg-samples", "reconstruct.w_avg_samples", "Mapped latents for the w statistics", "10000");
  cli.option(cmd, "--noise-weight", "reconstruct.noise_weight", "Noise regularisation weight (test_celeba: 10000)",
             "10000");
  cli.option(cmd, "--crop-resolution", "reconstruct.crop_resolution", "Side of the aligned target crop", "1024");
  cli.option(cmd, "--max-pixels", "reconstruct.max_pixels", "Larger images are bad_input (checked on the header)",
             "64000000");
  cli.option(cmd, "--recon-weights", "reconstruct.recon_weights",
             "ReconNet weights: geometry from the network instead of the landmark fit (BFM-layout --model)");
  cli.option(cmd, "--lpips-vgg", "reconstruct.lpips_vgg", "NVIDIA's vgg16.pt (TorchScript); without it LPIPS is off");
  cli.option(cmd, "--lpips-batch", "reconstruct.lpips_batch",
             "Images per VGG16 pass of LPIPS (its activations: ~3.5 GB per 1024^2 image; same result)", "8");
  cli.option(cmd, "--id-weight", "reconstruct.id_weight",
             "Identity term weight: W * (1 - cos) of dlib ResNet descriptors of the chips (0 = off)", "0");
  cli.option(cmd, "--face-api", "reconstruct.face_api",
             "face-api folder (or its face_recognition_model-weights_manifest.json) for --id-weight "
             "(default: <assets>/face-api)");
  cli.option(cmd, "--model", "reconstruct.model", "Face model: canonical | synthetic | MAT:UV", "canonical");
  cli.option(cmd, "--model-seed", "reconstruct.model_seed", "Seed of the synthetic model", "0");
  cli.option(cmd, "--model-grid", "reconstruct.model_grid", "Grid of the synthetic model", "40");
  cli.option(cmd, "--network", "reconstruct.network", "Generator group in the checkpoint (the default falls back to G when the file has no G_ema)", "G_ema");
  cli.option(cmd, "--assets", "reconstruct.assets", "Assets folder (default: $FACETEX_ASSETS or <source>/assets)");
  cli.option(cmd, "--landmarks", "reconstruct.landmarks",
             "Landmark source: dlib (detector + 68-point predictor) | annotations (packed inputs' own /coeffs + /crop, "
             "e.g. a data synth world with --model WORLD/model.mat:WORLD/uv.npy)", "dlib");
  cli.option(cmd, "--predictor", "reconstruct.predictor", "dlib shape_predictor_68_face_landmarks.dat");
  cli.option(cmd, "--upsample", "reconstruct.upsample", "dlib detector image doublings", "1");
  cli.option(cmd, "--device", "reconstruct.device", "cpu | cuda | cuda:i", "cpu");
  cli.option(cmd, "--seed", "reconstruct.seed", "Seed of the per-photo noise (with the input's index)", "0");
  cli.flag(cmd, "--overwrite", "reconstruct.overwrite",
           "Replace the finished inputs in --out that were made with other settings (default: refuse, naming the "
           "settings that differ); each old folder goes once its new one is complete");
  cli.on_run(cmd, run_reconstruct);
}

}  // namespace facetex::app
