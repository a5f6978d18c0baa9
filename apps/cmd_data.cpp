// `facetex data ...`: pack, merge-manifest, verify, inspect, synth, annotate, stream. Wiring only; the jobs live in data/.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "apps/cli.h"
#include "apps/face_front_end.h"
#include "cluster/world.h"
#include "core/crc32.h"
#include "core/error.h"
#include "core/log.h"
#include "core/partition.h"
#include "core/progress.h"
#include "core/version.h"
#include "data/inspect.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/verify.h"
#include "train/annotate.h"
#include "train/synthetic_world.h"

namespace facetex::app {
namespace {

int run_pack(const Config& c) {
  data::PackOptions o;
  o.images = c.require_string("pack.images");
  o.out = c.require_string("pack.out");
  o.resolution = static_cast<int>(c.get_int("pack.resolution", 0));
  o.shard_size = c.get_int("pack.shard_size", 1000);
  o.storage = data::parse_storage(c.get_string("pack.storage", "png"));
  o.deflate = static_cast<int>(c.get_int("pack.deflate", 0));
  o.jpeg_quality = static_cast<int>(c.get_int("pack.jpeg_quality", 95));
  o.square = data::parse_square_policy(c.get_string("pack.square", "none"));
  o.allow_upscale = c.get_bool("pack.allow_upscale", false);
  o.part = parse_part(c.get_string("pack.part", "0/1"));
  o.threads = static_cast<int>(c.get_int("pack.threads", 0));
  o.on_corrupt = data::parse_on_corrupt(c.get_string("pack.on_corrupt", "fail"));
  o.overwrite = c.get_bool("pack.overwrite", false);
  auto r = data::pack_images(o);
  std::printf("pack: %lld images in %zu shards (%lld written, %lld kept from an earlier run), %zu inputs skipped, "
              "%.1f s -> %s\n",
              static_cast<long long>(r.manifest.count), r.manifest.shards.size(),
              static_cast<long long>(r.shards_written), static_cast<long long>(r.shards_reused),
              r.manifest.skipped.size(), r.seconds, r.manifest_path.string().c_str());
  return 0;
}

int run_merge(const Config& c) {
  auto m = data::merge_part_manifests(c.require_string("merge.dir"));
  std::printf("merge-manifest: %zu shards, %lld images, %zu inputs skipped -> %s/dataset.json\n", m.shards.size(),
              static_cast<long long>(m.count), m.skipped.size(), c.require_string("merge.dir").c_str());
  return 0;
}

int run_verify(const Config& c) {
  data::VerifyOptions o;
  o.dir = c.require_string("verify.dir");
  o.decode = !c.get_bool("verify.skip_decode", false);
  o.threads = static_cast<int>(c.get_int("verify.threads", 0));
  FACETEX_CHECK_USAGE(o.threads >= 0, "--threads must be >= 0 (0: all cores), got {}", o.threads);
  auto r = data::verify_dataset(o);
  for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
  for (const auto& p : r.problems) std::fprintf(stderr, "bad: %s\n", p.c_str());
  std::printf("verify: %lld shards, %lld rows checked, %lld bad rows, %lld annotations checked, %zu problems — %s\n",
              static_cast<long long>(r.shards), static_cast<long long>(r.rows_checked),
              static_cast<long long>(r.bad_rows), static_cast<long long>(r.annotations_checked), r.problems.size(),
              r.ok() ? "OK" : "FAILED");
  return r.ok() ? 0 : static_cast<int>(ExitCode::kData);
}

int run_inspect(const Config& c) {
  data::InspectOptions o;
  o.dir = c.require_string("inspect.dir");
  o.rows = c.get_int("inspect.rows", 0);
  o.sheet = c.get_string("inspect.sheet", "");
  FACETEX_CHECK_USAGE(o.sheet.empty() || o.sheet.extension() == ".png", "--sheet {}: the contact sheet is a PNG; name "
                      "it .png", o.sheet.string());
  o.seed = c.get_int("inspect.seed", -1);
  o.tile = static_cast<int>(c.get_int("inspect.tile", 128));
  FACETEX_CHECK_USAGE(!o.sheet.empty() || (!c.has("inspect.tile") && !c.has("inspect.seed")),
                      "--tile and --seed shape the contact sheet; give --sheet PATH.png too");
  if (!o.sheet.empty() && o.rows == 0) o.rows = 64;
  std::fputs(data::inspect_dataset(o).c_str(), stdout);
  return 0;
}

int run_stream(const Config& c) {
  const cluster::World world = cluster::discover_world();
  auto ds = data::Dataset::open(c.require_string("data.shards"),
                                data::parse_on_corrupt(c.get_string("data.on_corrupt", "fail")));
  data::LoaderOptions o;
  o.batch = c.get_int("data.batch", 32);
  o.seed = c.get_uint("data.seed", 0);
  o.threads = static_cast<int>(c.get_int("data.threads", 0));
  o.prefetch = static_cast<int>(c.get_int("data.prefetch", 0));
  o.xflip = c.get_bool("data.xflip", false);
  o.on_corrupt = data::parse_on_corrupt(c.get_string("data.on_corrupt", "fail"));
  o.rank = c.get_int("stream.rank", world.rank);
  o.world = c.get_int("stream.world", world.size);
  const int64_t epochs = c.get_int("stream.epochs", 1);
  FACETEX_CHECK_USAGE(epochs >= 1, "--epochs must be >= 1");
  FACETEX_CHECK_USAGE(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  for (const char* key : {"data.threads", "data.prefetch"}) {  // the int64 values: their int conversion above can wrap
    const int64_t v = c.get_int(key, 0);
    FACETEX_CHECK_USAGE(v >= 0 && v <= 4096, "{} must be 0 .. 4096 (threads: 0 = one per core), got {}", key, v);
  }
  const int64_t items = o.xflip ? 2 * ds->size() : ds->size();
  o.limit = epochs * items;
  data::StreamingLoader loader(ds, o);
  log::get("data").info("streaming {} epochs of {} items ({}x{} {}, {} shards) as rank {} of {}, batch {}, {} threads",
                        epochs, items, ds->resolution(), ds->resolution(), data::storage_name(ds->storage()),
                        ds->shards().size(), o.rank, o.world, o.batch,
                        o.threads > 0 ? std::to_string(o.threads) : std::string("all"));
  Progress progress("stream", (o.limit + o.world - 1 - o.rank) / o.world, "images", "data");
  uint32_t order = 0;  // digest of the delivered order: equal digests = identical streams
  const auto t0 = std::chrono::steady_clock::now();
  int64_t batches = 0;
  while (auto b = loader.next()) {
    order = crc32(b->rows.data(), b->rows.size() * sizeof(int64_t), order);
    order = crc32(b->flipped.data(), b->flipped.size(), order);
    progress.advance(b->size);
    ++batches;
  }
  progress.finish();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto st = loader.stats();
  std::printf("stream: %lld images in %lld batches, %.2f s: %.1f images/s, %.1f MiB/s read from shards, "
              "consumer waited %.2f s, %lld corrupt rows replaced, order digest %08x\n",
              static_cast<long long>(st.images), static_cast<long long>(batches), s, st.images / s,
              st.stored_bytes / s / 1048576.0, st.consumer_wait_seconds, static_cast<long long>(st.corrupt_skips),
              order);
  return 0;
}


int run_annotate(const Config& c) {
  train::AnnotateOptions o;
  o.shards = c.require_string("annotate.shards");
  o.out = c.require_string("annotate.out");
  o.part = parse_part(c.get_string("annotate.part", "0/1"));
  o.on_corrupt = data::parse_on_corrupt(c.get_string("annotate.on_corrupt", "fail"));
  o.overwrite = c.get_bool("annotate.overwrite", false);
  o.recon_weights = c.get_string("annotate.recon_weights", "");
  o.threads = static_cast<int>(c.get_int("annotate.threads", 0));
  o.deflate = static_cast<int>(c.get_int("annotate.deflate", 0));
  o.fit.iterations = static_cast<int>(c.get_int("annotate.iterations", o.fit.iterations));
  o.fit.fit_shape = !c.get_bool("annotate.pose_only", false);
  o.fit.id_weight = c.get_double("annotate.id_weight", o.fit.id_weight);
  o.fit.exp_weight = c.get_double("annotate.exp_weight", o.fit.exp_weight);
  o.fit.use_jaw = c.get_bool("annotate.use_jaw", false);
  FACETEX_CHECK_USAGE(o.fit.iterations >= 1 && o.fit.id_weight >= 0 && o.fit.exp_weight >= 0 &&
                          std::isfinite(o.fit.id_weight) && std::isfinite(o.fit.exp_weight),
                      "--iterations must be >= 1 and the prior weights finite and >= 0");
  const std::string assets = assets_root(c, "annotate.assets");
  std::string model_spec = c.get_string("annotate.model", "auto");
  if (model_spec == "auto") model_spec = train::auto_model_spec(o.shards);
  FaceFrontEnd front_end = face_front_end(c, "annotate", model_spec, assets);
  o.model = std::move(front_end.model.model);
  o.model_name = front_end.model.name;
  o.landmarks = std::move(front_end.landmarks);
  const auto r = train::annotate_shards(o);
  std::printf("annotate: %lld rows in %zu shards (%lld written, %lld kept from an earlier run), %lld faces, %lld "
              "no face, %lld rows skipped; mean landmark residual %.3f px (%.4f of the inter-ocular distance); "
              "%lld rows annotated in %.1f s (%.2f rows/s) -> %s\n",
              static_cast<long long>(r.rows), r.manifest.shards.size(), static_cast<long long>(r.shards_written),
              static_cast<long long>(r.shards_reused), static_cast<long long>(r.faces),
              static_cast<long long>(r.no_face), static_cast<long long>(r.skipped_rows), r.mean_residual_px,
              r.mean_residual_iod, static_cast<long long>(r.rows_processed), r.seconds,
              r.seconds > 0 ? r.rows_processed / r.seconds : 0.0, r.manifest_path.string().c_str());
  return 0;
}

}  // namespace

void add_data_commands(Cli& cli) {
  CLI::App* data = cli.app().add_subcommand("data", "Datasets: pack images into HDF5 shards, verify, inspect, stream");
  data->require_subcommand(1);

  CLI::App* pack = data->add_subcommand("pack", "Pack a folder or .zip of PNG/JPEG images into HDF5 shards");
  cli.required(pack, "--images", "pack.images", "Input folder (searched recursively) or .zip archive");
  cli.required(pack, "--out", "pack.out", "Output shard folder");
  cli.option(pack, "--resolution", "pack.resolution", "Side of the packed images; 0 = the first image's size", "0");
  cli.option(pack, "--shard-size", "pack.shard_size", "Inputs per shard", "1000");
  cli.option(pack, "--storage", "pack.storage", "raw (uint8 pixels) | png (lossless) | jpeg", "png");
  cli.option(pack, "--deflate", "pack.deflate", "Deflate level 0-9 for raw storage", "0");
  cli.option(pack, "--jpeg-quality", "pack.jpeg_quality", "JPEG quality when re-encoding", "95");
  cli.option(pack, "--square", "pack.square", "Non-square inputs: none (error) | center-crop", "none");
  cli.flag(pack, "--allow-upscale", "pack.allow_upscale", "Enlarge inputs smaller than --resolution (bicubic)");
  cli.option(pack, "--part", "pack.part", "Pack part i of N (Slurm array task); then run merge-manifest", "0/1");
  cli.option(pack, "--threads", "pack.threads", "Decode/encode threads; 0 = all cores", "0");
  cli.option(pack, "--on-corrupt", "pack.on_corrupt", "Bad input image: fail | skip (listed in the manifest)", "fail");
  cli.flag(pack, "--overwrite", "pack.overwrite",
           "Replace a finished dataset in --out whose inputs or settings changed (default: refuse)");
  cli.on_run(pack, run_pack);

  CLI::App* merge = data->add_subcommand("merge-manifest", "Join the part manifests of a --part pack into dataset.json");
  cli.required(merge, "dir", "merge.dir", "Shard folder");
  cli.on_run(merge, run_merge);

  CLI::App* verify = data->add_subcommand("verify", "Check a packed dataset: schema, counts, sizes, every row's CRC");
  cli.required(verify, "dir", "verify.dir", "Shard folder");
  cli.flag(verify, "--skip-decode", "verify.skip_decode", "Do not decode PNG/JPEG rows (CRC checks only)");
  cli.option(verify, "--threads", "verify.threads", "Threads; 0 = all cores", "0");
  cli.on_run(verify, run_verify);

  CLI::App* inspect = data->add_subcommand("inspect", "Summarise a packed dataset; optionally write a contact sheet");
  cli.required(inspect, "dir", "inspect.dir", "Shard folder");
  cli.option(inspect, "--sheet", "inspect.sheet", "Write a PNG contact sheet here");
  cli.option(inspect, "--rows", "inspect.rows", "Rows on the sheet", "64");
  cli.option(inspect, "--seed", "inspect.seed", "Draw the rows at random with this seed; -1 = the first rows", "-1");
  cli.option(inspect, "--tile", "inspect.tile", "Tile side in pixels", "128");
  cli.on_run(inspect, run_inspect);

  CLI::App* synth = data->add_subcommand(
      "synth", "Write the synthetic world: rendered synthetic faces with known textures and exact annotations");
  cli.required(synth, "--out", "synth.out", "Output folder (model.mat, uv.npy, world.json, shards/)");
  cli.option(synth, "--count", "synth.count", "Images", "1024");
  cli.option(synth, "--resolution", "synth.resolution", "Image side", "64");
  cli.option(synth, "--texture-resolution", "synth.texture_resolution", "UV texture side", "64");
  cli.option(synth, "--seed", "synth.seed", "Seed of the world", "0");
  cli.option(synth, "--shard-size", "synth.shard_size", "Images per shard", "256");
  cli.flag(synth, "--overwrite", "synth.overwrite",
           "Replace a world in --out made with other settings (default: refuse; the same settings keep it)");
  cli.on_run(synth, [](const Config& c) {
    train::SyntheticWorldOptions o;
    o.out = c.require_string("synth.out");
    o.count = c.get_int("synth.count", o.count);
    const int64_t resolution = c.get_int("synth.resolution", o.resolution),
                  texture_resolution = c.get_int("synth.texture_resolution", o.texture_resolution);
    FACETEX_CHECK_USAGE(o.count >= 1 && o.count <= 100'000'000, "--count {}: must be 1..100000000", o.count);
    FACETEX_CHECK_USAGE(resolution >= 16 && resolution <= 4096 && texture_resolution >= 16 && texture_resolution <= 4096,
                        "--resolution {} / --texture-resolution {}: must be 16..4096", resolution, texture_resolution);
    o.resolution = static_cast<int>(resolution);
    o.texture_resolution = static_cast<int>(texture_resolution);
    o.overwrite = c.get_bool("synth.overwrite", false);
    o.seed = c.get_uint("synth.seed", 0);
    o.shard_size = c.get_int("synth.shard_size", o.shard_size);
    const auto r = train::write_synthetic_world(o);
    std::printf("synth: %lld images %s -> %s/shards\n", static_cast<long long>(r.images),
                r.kept ? "already there (same settings; nothing written)" : fmt::format("in {:.1f} s", r.seconds).c_str(),
                o.out.string().c_str());
    return 0;
  });

  CLI::App* annotate = data->add_subcommand(
      "annotate", "Detect faces and fit the face model: /coeffs, /crop, /valid, landmarks -> new annotated shards");
  cli.required(annotate, "--shards", "annotate.shards", "Input dataset folder (dataset.json + shards)");
  cli.required(annotate, "--out", "annotate.out", "Output folder: annotated shards, manifest, model.mat + uv.npy");
  cli.option(annotate, "--part", "annotate.part", "Annotate part i of N of the input shards; then merge-manifest", "0/1");
  cli.option(annotate, "--model", "annotate.model",
             "Face model: auto (the model recorded beside the shards — a synthetic world's, an earlier annotate's — "
             "else canonical) | synthetic (data synth's, see --model-seed) | canonical (MediaPipe mesh) | MAT:UV",
             "auto");
  cli.option(annotate, "--model-seed", "annotate.model_seed", "Seed of the synthetic model (= data synth --seed)", "0");
  cli.option(annotate, "--model-grid", "annotate.model_grid", "Grid of the synthetic model (data synth: 40)", "40");
  cli.option(annotate, "--landmarks", "annotate.landmarks",
             "Landmark source: dlib (detector + 68-point predictor) | annotations (project the input's own "
             "/coeffs + /crop: checks the fit on data synth shards)", "dlib");
  cli.option(annotate, "--recon-weights", "annotate.recon_weights", "ReconNet weights (converted epoch_20.pth): coefficients from the network on the 224 crop instead of the landmark fit (BFM-layout model)");
  cli.option(annotate, "--assets", "annotate.assets", "Assets folder (default: $FACETEX_ASSETS or <source>/assets)");
  cli.option(annotate, "--predictor", "annotate.predictor", "dlib shape_predictor_68_face_landmarks.dat");
  cli.option(annotate, "--upsample", "annotate.upsample", "dlib detector image doublings", "1");
  cli.option(annotate, "--iterations", "annotate.iterations", "Levenberg-Marquardt iterations of the fit", "40");
  cli.flag(annotate, "--pose-only", "annotate.pose_only", "Fit angles and translation only (no identity/expression)");
  cli.option(annotate, "--id-weight", "annotate.id_weight", "Ridge prior on identity coefficients (crop px^2)", "1");
  cli.option(annotate, "--exp-weight", "annotate.exp_weight", "Ridge prior on expression coefficients (crop px^2)", "1");
  cli.flag(annotate, "--use-jaw", "annotate.use_jaw", "Fit the 17 jaw-line points too (default: the 51 inner points)");
  cli.flag(annotate, "--overwrite", "annotate.overwrite",
           "Replace a finished annotated dataset in --out made with other settings (default: refuse)");
  cli.option(annotate, "--threads", "annotate.threads", "Landmark worker threads; 0 = all cores", "0");
  cli.option(annotate, "--deflate", "annotate.deflate", "Deflate level 0-9 of raw-storage images", "0");
  cli.option(annotate, "--on-corrupt", "annotate.on_corrupt", "Corrupt row or shard: fail | skip (listed in the manifest)",
             "fail");
  cli.on_run(annotate, run_annotate);

  CLI::App* stream = data->add_subcommand("stream", "Stream a packed dataset through the training loader; print throughput");
  cli.required(stream, "shards", "data.shards", "Shard folder");
  cli.option(stream, "--batch", "data.batch", "Images per rank per step", "32");
  cli.option(stream, "--threads", "data.threads", "Loader worker threads; 0 = all cores", "0");
  cli.option(stream, "--prefetch", "data.prefetch", "Ready batches kept ahead; 0 = 2 x threads", "0");
  cli.option(stream, "--seed", "data.seed", "Shuffle seed", "0");
  cli.flag(stream, "--xflip", "data.xflip", "Mirror augmentation (dataset doubled, as StyleGAN2-ADA --mirror)");
  cli.option(stream, "--on-corrupt", "data.on_corrupt",
             "Corrupt row or shard: fail | skip (a row replaced, a shard left out; counted, logged)", "fail");
  cli.option(stream, "--epochs", "stream.epochs", "Epochs to stream", "1");
  cli.option(stream, "--rank", "stream.rank", "Rank to stream as (default: from the launcher)");
  cli.option(stream, "--world", "stream.world", "World size (default: from the launcher)");
  cli.on_run(stream, run_stream);
}

}  // namespace facetex::app
