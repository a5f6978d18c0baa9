#include "train/training_loop.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "cluster/communicator.h"
#include "cluster/gradient_reducer.h"
#include "cluster/preemption.h"
#include "cluster/world.h"
#include "core/atomic_file.h"
#include "core/env_param.h"
#include "core/error.h"
#include "core/folder_lock.h"
#include "core/log.h"
#include "core/work_pool.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/verify.h"
#include "kernels/device_memory.h"
#include "kernels/image_normalize.h"
#include "models/stylegan2/discriminator.h"
#include "models/stylegan2/generator.h"
#include "models/weights/weight_file.h"
#include "monitoring/metrics.h"
#include "train/ada_controller.h"
#include "train/adam.h"
#include "train/augment_pipe.h"
#include "train/checkpoint.h"
#include "train/generator_pipeline.h"
#include "train/image_grid.h"
#include "train/loss.h"
#include "train/shards_face_model.h"
#include "train/op_census.h"
#include "train/profile_window.h"
#include "train/face_renderer.h"
#include "train/generated_background.h"
#include "train/synth_metric.h"
#include "train/texture_pipeline.h"
#include "train/training_stats.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace facetex::train {
namespace {

using models::stylegan2::Discriminator;
using models::stylegan2::Generator;

// Counts ATen calls, autograd nodes and host syncs per phase and logs them per tick (train/op_census.h); 2 also
// lists the most called operators.
FACETEX_PARAM_INT(OpCensus, "FACETEX_OP_CENSUS", 0)
// Records this many iterations with LibTorch's profiler after FACETEX_PROFILE_START iterations of this process
// (warm-up: allocator, cuDNN autotuning) and logs the summary (train/profile_window.h), also in profile.txt. 16
// iterations hold the lazy phases in their proportions (4 Greg, 1 Dreg).
FACETEX_PARAM_INT(ProfileIterations, "FACETEX_PROFILE_ITERATIONS", 0)
FACETEX_PARAM_INT(ProfileStart, "FACETEX_PROFILE_START", 16)

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double resident_gb() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      f >> kb;
      return kb / 1048576.0;
    }
    std::getline(f, key);
  }
  return 0;
}

std::string format_duration(double s) {
  const int64_t t = static_cast<int64_t>(s);
  if (t >= 86400) return fmt::format("{}d {:02d}h {:02d}m", t / 86400, (t / 3600) % 24, (t / 60) % 60);
  if (t >= 3600) return fmt::format("{}h {:02d}m {:02d}s", t / 3600, (t / 60) % 60, t % 60);
  if (t >= 60) return fmt::format("{}m {:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Copies every parameter and buffer of `src` into `dst` (same architecture).
void copy_module(torch::nn::Module& dst, const torch::nn::Module& src) {
  at::NoGradGuard no_grad;
  auto dp = dst.parameters(true), sp = src.parameters(true);
  for (size_t i = 0; i < dp.size(); ++i) dp[i].copy_(sp[i]);
  auto db = dst.buffers(true), sb = src.buffers(true);
  for (size_t i = 0; i < db.size(); ++i) db[i].copy_(sb[i]);
}

std::vector<std::pair<std::string, at::Tensor>> named_params(torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
  return out;
}

struct Metrics {
  metrics::Gauge& kimg = metrics::gauge("facetex_train_kimg", "Training progress in thousands of real images");
  metrics::Counter& images = metrics::counter("facetex_train_images_total", "Real images consumed by training");
  metrics::Gauge& augment_p = metrics::gauge("facetex_train_augment_p", "ADA augmentation probability");
  metrics::Counter& nan = metrics::counter("facetex_train_nonfinite_gradients_total",
                                           "Gradient entries that were NaN or Inf and were replaced");
  metrics::Histogram& checkpoint = metrics::histogram("facetex_train_checkpoint_seconds", "Time to write a checkpoint",
                                                      metrics::seconds_buckets());
  // Gradient averaging across ranks (zero with one rank): bytes, time of the collectives, and the part of that time
  // the step waited for (not hidden behind backward).
  metrics::Counter& allreduce_bytes =
      metrics::counter("facetex_allreduce_bytes_total", "Gradient bytes allreduced across ranks");
  metrics::Histogram& allreduce_seconds = metrics::histogram(
      "facetex_allreduce_seconds", "Time of one phase's gradient allreduces on the communication thread",
      metrics::seconds_buckets());
  metrics::Histogram& allreduce_exposed = metrics::histogram(
      "facetex_allreduce_exposed_seconds", "Time a phase waited for its gradient allreduces after backward",
      metrics::seconds_buckets());
  metrics::Gauge& gpu_memory =
      metrics::gauge("facetex_gpu_memory_bytes", "GPU memory in use on this rank's device (0 on CPU)");
  metrics::Histogram& phase(Phase p) {
    return metrics::histogram("facetex_train_phase_seconds", "Time per training phase", metrics::seconds_buckets(),
                              {{"phase", phase_name(p)}});
  }
  metrics::Gauge& loss(const std::string& term) {
    return metrics::gauge("facetex_train_loss", "Mean loss term over the last tick", {{"term", term}});
  }
};

class Trainer {
 public:
  Trainer(const TrainOptions& o, const Config& config) : o_(o), config_(config), log_(log::get("train")) {}

  TrainResult run(int64_t max_steps);

 private:
  void setup();
  // A run folder holds one run: refuses (UsageError) a resume whose network settings differ from its latest
  // checkpoint's, and logs every other setting that changed (e.g. run.total_kimg extended).
  void check_resume_settings();
  // Rewrites a history file (one JSON row per line) without the rows past the resumed kimg.
  void drop_history_after(const fs::path& file, const std::function<double(const nlohmann::json&)>& kimg_of);
  void resume_or_start();
  void iteration();
  // Backgrounds (normalised, on the device) with their geometry annotations for the given dataset rows.
  BatchContext context_for_rows(const std::vector<int64_t>& rows, const at::Tensor& images) const;
  void synth_metric();
  std::vector<int64_t> grid_rows(int64_t n) const;
  at::Tensor read_rows(int64_t n) const;
  void tick(bool done);
  void write_grids(const std::string& suffix);
  void checkpoint();
  TrainState capture_state() const;
  bool root() const { return world_.rank == 0; }
  // Multi-rank plumbing (no-ops with one rank).
  void broadcast_networks();
  void check_consistency();
  void sync_stats();
  void restore_rank_rng(const TrainState& s);

  TrainOptions o_;
  Config config_;
  spdlog::logger& log_;
  fs::path run_dir_;
  at::Device device_{at::kCPU};
  // Host-to-device copies of the iteration's inputs (latents, image batches) without the stream synchronisation of
  // a blocking copy: their sources are pageable, which the driver stages before the copy call returns.
  at::TensorOptions to_device_async_;
  cluster::World world_;
  std::shared_ptr<cluster::Communicator> comm_;
  // Multi-rank: gradient averaging for G and D (null with one rank).
  std::unique_ptr<cluster::GradientReducer> reducer_G_, reducer_D_;
  // The latent stream shared by all ranks: every iteration draws the global batch of z and each rank takes its
  // slice, so the latents do not depend on the number of ranks (the reference draws per rank).
  mutable at::Generator latent_gen_;  // mutable: reading its state (capture_state) takes its lock
  std::shared_ptr<Generator> G_, G_ema_;
  std::shared_ptr<Discriminator> D_;
  std::unique_ptr<AugmentPipe> augment_;
  std::unique_ptr<AdaController> ada_;
  std::unique_ptr<GeneratorPipeline> pipeline_;
  std::unique_ptr<Adam> opt_G_, opt_D_;
  TrainingStats stats_;
  std::unique_ptr<StyleGAN2Loss> loss_;
  std::shared_ptr<const data::Dataset> dataset_;
  std::unique_ptr<data::StreamingLoader> loader_;
  data::Cursor cursor_;  // where the next batch comes from (what a checkpoint saves)
  // Texture mode: the face renderer and a second stream of annotated images used as the fakes' backgrounds.
  std::shared_ptr<FaceRenderer> renderer_;
  std::unique_ptr<data::StreamingLoader> background_loader_;
  data::Cursor background_cursor_;
  bool has_ground_truth_ = false;
  // The composite grids: fixed backgrounds and geometry (dataset rows, or generated once from the grid latents).
  std::shared_ptr<const FaceRenderer> grid_renderer_;
  BatchContext grid_context_;
  at::Tensor truth_textures_;
  Metrics metrics_;
  int64_t batch_rank_ = 0, batch_gpu_ = 0, rounds_ = 0;
  int64_t cur_nimg_ = 0, batch_idx_ = 0, cur_tick_ = 0, tick_start_nimg_ = 0;
  double training_seconds_ = 0;
  Clock::time_point start_time_, tick_start_time_;
  double maintenance_seconds_ = 0;
  at::Tensor grid_z_;
  bool resumed_ = false;
  std::unique_ptr<FolderLock> run_lock_;  // rank 0, for the whole run
  std::optional<fs::path> latest_checkpoint_;
  // FACETEX_OP_CENSUS=1: what each phase asks of LibTorch, summed over the tick (phase runs counted).
  std::unique_ptr<OpCensus> census_;
  OpCounts census_phase_[4], census_iteration_;
  int64_t census_phase_runs_[4] = {0, 0, 0, 0}, census_iterations_ = 0;
};

void Trainer::setup() {
  FACETEX_CHECK_USAGE(!o_.run_dir.empty(), "run.dir (--run) is required");
  FACETEX_CHECK_USAGE(!o_.shards.empty(), "data.shards is required (a folder written by `facetex data pack`)");
  std::unique_ptr<GeneratorPipeline> generated;  // model.background = generated (train/generated_background.h)
  run_dir_ = o_.run_dir;
  world_ = cluster::discover_world();
  if (root()) {
    fs::create_directories(run_dir_ / "checkpoints");
    // Two trainers in one run folder would resume from the same checkpoint and overwrite each other's.
    run_lock_ = std::make_unique<FolderLock>(run_dir_, "train", "facetex train");
    // Temporary files of checkpoint writes a killed run left (each as large as a checkpoint); the lock says no other
    // trainer writes here now.
    if (const int stale = remove_partial_files(run_dir_ / "checkpoints"); stale > 0) {
      log_.info("removed {} temporary file(s) of interrupted checkpoint writes", stale);
    }
    log::add_file_sink((run_dir_ / "log.txt").string());
  }
  // LibTorch's OpenMP pool can come up with a single thread in containers (omp_get_max_threads() == 1 with 2
  // cores here); use the cores this rank has unless OMP_NUM_THREADS says otherwise.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    const int cores = hardware_workers();
    at::set_num_threads(std::max(1, cores / std::max(1, world_.local_size)));
  }
  if (o_.device == "cuda") {
    FACETEX_CHECK_USAGE(at::hasCUDA(), "run.device = cuda, but this build or machine has no CUDA");
    device_ = at::Device(at::kCUDA, cluster::local_device_index(world_, static_cast<int>(at::getNumGPUs())));
    // LibTorch's defaults differ from the reference training loop's: cuDNN may use TF32 (allow_tf32 defaults to
    // true for convolutions) and does not benchmark. Both change what a GPU step computes or how fast.
    at::globalContext().setBenchmarkCuDNN(o_.cudnn_benchmark);
    at::globalContext().setAllowTF32CuDNN(o_.allow_tf32);
    at::globalContext().setAllowTF32CuBLAS(o_.allow_tf32);
  }
  to_device_async_ = at::TensorOptions().device(device_);
  comm_ = cluster::make_communicator(world_, o_.comm, device_);
  if (param_OpCensus() != 0) census_ = std::make_unique<OpCensus>(/*by_name=*/param_OpCensus() >= 2);
  // Said for one rank too: a single-rank run may still use MPI or NCCL (run.comm), e.g. to check a backend.
  log_.info("rank {} of {} on {} ({} communicator, {} launcher, device {})", world_.rank, world_.size, world_.node,
            comm_->backend(), world_.launcher, device_.str());
  if (world_.size > 1) comm_->barrier();  // every rank is up before anyone touches the run folder
  check_resume_settings();

  // Data: every rank streams its part of one global order.
  dataset_ = data::Dataset::open(o_.shards, data::OnCorrupt::kFail);
  FACETEX_CHECK_USAGE(o_.batch % world_.size == 0, "train.batch {} is not divisible by the {} ranks", o_.batch,
                      world_.size);
  batch_rank_ = o_.batch / world_.size;
  batch_gpu_ = o_.batch_gpu > 0 ? o_.batch_gpu : batch_rank_;
  FACETEX_CHECK_USAGE(batch_rank_ % batch_gpu_ == 0, "train.batch_gpu {} must divide the per-rank batch {}", batch_gpu_,
                      batch_rank_);
  rounds_ = batch_rank_ / batch_gpu_;
  // D's minibatch-stddev layer splits each micro-batch into groups of min(group, micro-batch) images.
  if (o_.D.mbstd_group_size) {
    const int64_t group = std::min<int64_t>(*o_.D.mbstd_group_size, batch_gpu_);
    FACETEX_CHECK_USAGE(batch_gpu_ % group == 0,
                        "model.mbstd_group {} does not divide the micro-batch of {} images (train.batch {} over {} "
                        "ranks{}); choose a divisor", *o_.D.mbstd_group_size, batch_gpu_, o_.batch, world_.size,
                        o_.batch_gpu > 0 ? fmt::format(", train.batch_gpu {}", o_.batch_gpu) : std::string());
  }

  // Networks: fresh from [model], or from a weight file (e.g. a converted pickle) with its own init_kwargs.
  if (!o_.init_weights.empty()) {
    auto weights = models::read_weight_file(o_.init_weights);
    FACETEX_CHECK_DATA(weights.count("G") && weights.count("D"), "{}: needs networks G and D", o_.init_weights);
    o_.G = models::stylegan2::parse_generator_config(weights.at("G").init_kwargs, o_.init_weights + " /G");
    o_.D = models::stylegan2::parse_discriminator_config(weights.at("D").init_kwargs, o_.init_weights + " /D");
    G_ = as_data_errors(o_.init_weights + " /G", [&] { return std::make_shared<Generator>(o_.G); });
    D_ = as_data_errors(o_.init_weights + " /D", [&] { return std::make_shared<Discriminator>(o_.D); });
    models::load_network(*G_, weights.at("G"), o_.init_weights + " /G");
    models::load_network(*D_, weights.at("D"), o_.init_weights + " /D");
  } else {
    if (o_.mode == "texture") {
      // G makes textures (any resolution), D judges composites at the dataset's resolution.
      const int tex = o_.texture_resolution > 0 ? o_.texture_resolution : dataset_->resolution();
      o_.G.img_resolution = o_.G.synthesis.img_resolution = tex;
    }
    at::manual_seed(o_.seed);  // network initialisation is reproducible from the run seed
    G_ = std::make_shared<Generator>(o_.G);
    D_ = std::make_shared<Discriminator>(o_.D);
  }
  FACETEX_CHECK_USAGE(dataset_->resolution() == o_.D.img_resolution,
                      "the dataset is {}x{} but the discriminator judges {}x{} images", dataset_->resolution(),
                      dataset_->resolution(), o_.D.img_resolution, o_.D.img_resolution);
  if (o_.mode == "texture" && o_.background == "generated") {
    // Backgrounds and their geometry come from the frozen networks, not the dataset (no annotations needed).
    FACETEX_CHECK_USAGE(!o_.face_model_mat.empty() && !o_.face_model_uv.empty(),
                        "texture mode needs model.face_model_mat and model.face_model_uv");
    auto renderer = std::make_shared<FaceRenderer>(
        models::face3d::load_morphable_model(o_.face_model_mat, o_.face_model_uv));
    renderer->to(device_);
    auto pipeline = load_generated_background_pipeline(o_, renderer, device_);
    FACETEX_CHECK_USAGE(pipeline->background_resolution() == dataset_->resolution(),
                        "model.background_generator makes {}x{} backgrounds but the dataset is {}x{}",
                        pipeline->background_resolution(), pipeline->background_resolution(),
                        dataset_->resolution(), dataset_->resolution());
    FACETEX_CHECK_USAGE(pipeline->nets().trained_G->config().z_dim == o_.G.z_dim,
                        "model.background_generator reads {}-d latents, the texture G {}-d (model.z_dim); both share "
                        "z", pipeline->nets().trained_G->config().z_dim, o_.G.z_dim);
    has_ground_truth_ = dataset_->shards().front()->has_annotation("gt_texture");
    grid_renderer_ = renderer;
    generated = std::move(pipeline);
  } else if (o_.mode == "texture") {
    // The shards' /coeffs only mean something with the model that made them: by default the one recorded beside
    // the shards (annotate.json, a synthetic world's world.json).
    const DatasetFaceModel face_model =
        resolve_dataset_face_model(o_.face_model_mat, o_.face_model_uv, o_.shards, /*compare_with_recorded=*/root());
    if (!face_model.mismatch.empty()) log_.warn("{}", face_model.mismatch);
    log_.info("face model {} + {}{}", face_model.files.mat.string(), face_model.files.uv.string(),
              face_model.files.recorded_in.empty() ? std::string(" (model.face_model_mat / _uv)")
                                                   : " (recorded in " + face_model.files.recorded_in.string() + ")");
    auto renderer = std::make_shared<FaceRenderer>(
        models::face3d::load_morphable_model(face_model.files.mat, face_model.files.uv));
    renderer->to(device_);
    const auto& shard = *dataset_->shards().front();
    FACETEX_CHECK_DATA(shard.has_annotation("coeffs") && shard.has_annotation("crop"),
                       "{}: texture mode needs the /coeffs and /crop annotations (facetex data annotate, or a "
                       "synthetic world from facetex data synth)", shard.path());
    FACETEX_CHECK_DATA(shard.annotation_row_size("coeffs") == renderer->layout().total(),
                       "{}: /coeffs has {} values per row, the face model needs {}", shard.path(),
                       shard.annotation_row_size("coeffs"), renderer->layout().total());
    data::require_intact_annotations(*dataset_, {"coeffs", "crop"});
    renderer_ = renderer;
    has_ground_truth_ = shard.has_annotation("gt_texture");
  }
  broadcast_networks();  // the reference's DDP construction: rank 0's G and D everywhere
  G_ema_ = std::make_shared<Generator>(o_.G);
  copy_module(*G_ema_, *G_);  // G_ema starts as a copy of G (spec §4.5)
  G_->to(device_);
  D_->to(device_);
  G_ema_->to(device_);
  G_->train();
  D_->train();
  G_ema_->eval();
  if (world_.size > 1) {
    // Hooks can only be registered on tensors that require grad; they stay in place when the phases toggle it.
    set_requires_grad(*G_, true);
    set_requires_grad(*D_, true);
    cluster::ReducerOptions ro;
    ro.bucket_mb = o_.bucket_mb;
    reducer_G_ = std::make_unique<cluster::GradientReducer>(comm_, G_->parameters(true), ro);
    reducer_D_ = std::make_unique<cluster::GradientReducer>(comm_, D_->parameters(true), ro);
  }
  set_requires_grad(*G_, false);
  set_requires_grad(*D_, false);
  set_requires_grad(*G_ema_, false);

  if (o_.augment != "noaug") augment_ = std::make_unique<AugmentPipe>(AugmentOptions::preset(o_.augpipe), o_.augment_p);
  if (o_.augment == "ada") {
    AdaOptions ao;
    ao.target = o_.ada_target;
    ao.interval = static_cast<int>(o_.ada_interval);
    ao.kimg = o_.ada_kimg;
    ada_ = std::make_unique<AdaController>(ao, o_.augment_p);
  }
  if (generated) {
    pipeline_ = std::move(generated);
  } else if (o_.mode == "texture") {
    pipeline_ = std::make_unique<TexturePipeline>(renderer_);
  } else {
    pipeline_ = std::make_unique<ImagePipeline>();
  }
  opt_G_ = std::make_unique<Adam>(named_params(*G_), AdamOptions::lazy(o_.lr_G, o_.beta1, o_.beta2, o_.eps,
                                                                       o_.G_reg_interval));
  opt_D_ = std::make_unique<Adam>(named_params(*D_), AdamOptions::lazy(o_.lr_D, o_.beta1, o_.beta2, o_.eps,
                                                                       o_.D_reg_interval));
  LossOptions lo;
  lo.r1_gamma = o_.r1_gamma;
  lo.pl_weight = o_.pl_weight;
  lo.pl_decay = o_.pl_decay;
  lo.pl_batch_shrink = o_.pl_batch_shrink;
  lo.style_mixing = o_.style_mixing;
  lo.noise = models::stylegan2::parse_noise_mode(o_.noise_mode);
  loss_ = std::make_unique<StyleGAN2Loss>(*G_, *D_, augment_.get(), *pipeline_, lo, stats_);
  if (ada_) loss_->on_real_signs = [this](const at::Tensor& signs) { ada_->report(signs); };

  // Grid latents from their own generator: snapshots never disturb the training RNG stream (exact resume).
  at::Generator grid_gen = at::detail::createCPUGenerator(0);
  grid_z_ = at::randn({o_.grid_images, o_.G.z_dim}, grid_gen).to(device_);
  if (renderer_) {
    // Fixed backgrounds for the composite grids: the first rows of the dataset.
    const int64_t n = std::min<int64_t>(o_.grid_images, dataset_->size());
    grid_z_ = grid_z_.narrow(0, 0, n);
    grid_context_ = context_for_rows(grid_rows(n), read_rows(n));
    grid_renderer_ = renderer_;
  } else if (auto* generated_pipeline = dynamic_cast<GeneratedBackgroundPipeline*>(pipeline_.get())) {
    // Generated mode: the frozen branch makes the grid's backgrounds and geometry once, from the grid latents and a
    // fixed seed, inside a fork of the global generators (the training streams continue untouched: exact resume).
    at::NoGradGuard no_grad;
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    const at::Tensor cpu_state = cpu.get_state();
    at::Generator cuda;  // a handle to the device's default generator (generated mode on a GPU)
    at::Tensor cuda_state;
    if (device_.is_cuda()) {
      cuda = at::globalContext().defaultGenerator(device_);
      cuda_state = cuda.get_state();
    }
    at::manual_seed(o_.seed + 0x67726964ULL);
    const at::Tensor ws = generated_pipeline->nets().trained_G->mapping->forward(grid_z_);
    const GeneratedBatch b = generated_pipeline->make_backgrounds(ws);
    grid_context_ = {b.backgrounds, b.coeffs, b.bbox};
    cpu.set_state(cpu_state);
    if (cuda_state.defined()) cuda.set_state(cuda_state);
  }
}

std::vector<int64_t> Trainer::grid_rows(int64_t n) const {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  return rows;
}

// The first n dataset rows as normalised images on the device.
at::Tensor Trainer::read_rows(int64_t n) const {
  std::string scratch;
  const int r = dataset_->resolution();
  at::Tensor out = at::empty({n, 3, r, r}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    auto loc = dataset_->locate(i);
    loc.shard->read_chw(loc.row, false, out[i].data_ptr<uint8_t>(), scratch);
  }
  return kernels::normalize_images(out).to(device_);
}

void Trainer::drop_history_after(const fs::path& file, const std::function<double(const nlohmann::json&)>& kimg_of) {
  if (!fs::is_regular_file(file)) return;
  std::istringstream in(read_file(file));
  std::string line, kept;
  int64_t dropped = 0;
  const double now = cur_nimg_ / 1000.0 + 1e-9;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (kimg_of(nlohmann::json::parse(line)) > now) {
        ++dropped;
        continue;
      }
    } catch (const std::exception&) {  // not ours to judge: kept as it is
    }
    kept += line + "\n";
  }
  if (dropped == 0) return;
  write_file_atomic(file, kept);
  log_.info("{}: dropped {} row(s) after kimg {:.3f} (written after the checkpoint this run resumes from)",
            file.string(), dropped, cur_nimg_ / 1000.0);
}

void Trainer::check_resume_settings() {
  latest_checkpoint_ = find_latest_checkpoint(run_dir_);
  const auto& latest = latest_checkpoint_;
  if (!latest) return;
  Config then;
  try {
    then = Config::parse(read_checkpoint_config(*latest), latest->string());
  } catch (const std::exception& e) {
    log_.warn("{}: cannot read the settings it was written with ({}); not compared", latest->string(), e.what());
    return;
  }
  // What decides the networks' shapes, by key, as resolved (presets, `auto` and defaults applied): a change cannot
  // resume (the checkpoint's weights would not fit). Resolved, so that a key unset then and set now to another value
  // than its default is caught here, not by the first tensor that does not fit.
  const auto shape_settings = [](const Config& c) {
    const TrainOptions t = parse_train_options(c);
    return std::map<std::string, std::string>{
        {"model.mode", t.mode},
        {"model.background", t.background},
        {"model.resolution", std::to_string(t.D.img_resolution)},
        {"model.texture_resolution", std::to_string(t.texture_resolution)},
        {"model.z_dim", std::to_string(t.G.z_dim)},
        {"model.w_dim", std::to_string(t.G.w_dim)},
        {"model.mapping_layers", std::to_string(t.G.mapping.num_layers)},
        {"model.channel_base", std::to_string(t.D.channel_base)},
        {"model.channel_max", std::to_string(t.D.channel_max)}};
  };
  std::map<std::string, std::string> shapes_then, shapes_now = shape_settings(config_);
  try {
    shapes_then = shape_settings(then);
  } catch (const std::exception& e) {  // written by another facetex version: compared key by key below
    log_.warn("{}: its settings do not resolve here ({}); compared key by key", latest->string(), e.what());
  }
  std::set<std::string> keys;
  for (const Config* c : {&then, &config_})
    for (const std::string& k : c->keys()) keys.insert(k);
  for (const auto& [k, v] : shapes_now) keys.insert(k);
  std::string network, other;
  for (const std::string& key : keys) {
    if (key == "run.dir") continue;  // the same folder, however it was spelled
    const auto a = then.value_text(key), b = config_.value_text(key);
    const bool shape_key = shapes_now.count(key) > 0;
    if (shape_key && !shapes_then.empty() && shapes_then.at(key) != shapes_now.at(key)) {
      const auto shown = [](const std::optional<std::string>& set, const std::string& resolved) {
        return set ? *set : resolved + " (unset: the default)";
      };
      network += fmt::format("{}{}: {} then, {} now", network.empty() ? "" : "; ", key,
                             shown(a, shapes_then.at(key)), shown(b, shapes_now.at(key)));
      continue;
    }
    if (a == b) continue;
    const std::string change = fmt::format("{}: {} then, {} now", key, a.value_or("(unset)"), b.value_or("(unset)"));
    std::string& list = shape_key && shapes_then.empty() && a && b ? network : other;
    list += (list.empty() ? "" : "; ") + change;
  }
  FACETEX_CHECK_USAGE(network.empty(),
                      "{}: this run was started with other network settings ({}) — {}; resuming needs the same "
                      "networks: use another --run, or this run's own settings (--config {})",
                      run_dir_.string(), latest->filename().string(), network, (run_dir_ / "config.toml").string());
  if (!other.empty() && root()) log_.warn("settings changed since {}: {}", latest->string(), other);
}

void Trainer::resume_or_start() {
  const auto& latest = latest_checkpoint_;  // found (and its settings compared) in setup
  latent_gen_ = at::detail::createCPUGenerator(o_.seed ^ 0x6c6174656e74ULL);  // same on every rank
  if (!latest) {
    at::manual_seed(o_.seed * world_.size + world_.rank);  // the reference's per-rank seed
    cursor_ = data::Cursor{};
    background_cursor_ = data::Cursor{};
    if (root()) {
      write_image_grid((run_dir_ / "reals.png").string(),
                       read_rows(std::min<int64_t>(o_.grid_images, dataset_->size())));
      write_grids("init");
      // The networks before training, for metrics that compare against the start (facetex metrics synth).
      models::write_weight_file(
          run_dir_ / "init.h5",
          {{"G_ema", models::network_state(*G_ema_, "Generator", models::stylegan2::to_init_kwargs(o_.G))}},
          "training run start", "facetex train");
      synth_metric();
    }
    log_.info("starting a new run in {} ({} mode, {}x{}, batch {}, {} kimg)", run_dir_.string(), o_.mode,
              o_.D.img_resolution, o_.D.img_resolution, o_.batch, o_.total_kimg);
    return;
  }
  auto [nets, s] = load_checkpoint(*latest, *opt_G_, *opt_D_);
  models::load_network(*G_, nets.G, latest->string() + " /G");
  models::load_network(*D_, nets.D, latest->string() + " /D");
  models::load_network(*G_ema_, nets.G_ema, latest->string() + " /G_ema");
  cur_nimg_ = s.cur_nimg;
  batch_idx_ = s.batch_idx;
  cur_tick_ = s.cur_tick;
  tick_start_nimg_ = s.tick_start_nimg;
  training_seconds_ = s.training_seconds;
  if (augment_) augment_->set_p(s.augment_p);
  if (ada_ && !s.ada_state.empty()) ada_->load_state(AdaState::from_json(nlohmann::json::parse(s.ada_state)));
  // Each rank's own running mean when the rank count is the checkpoint's; otherwise rank 0's for everyone.
  const bool own_pl_mean = static_cast<int64_t>(s.pl_mean_ranks.size()) == world_.size;
  loss_->pl_mean.fill_(own_pl_mean ? s.pl_mean_ranks[static_cast<size_t>(world_.rank)] : s.pl_mean);
  cursor_ = s.loader_cursor;
  background_cursor_ = s.background_cursor;
  stats_.restore(s.stats_names, s.stats_values);
  restore_rank_rng(s);
  if (s.latent_rng_state.defined()) {
    std::lock_guard<std::mutex> lock(latent_gen_.mutex());
    latent_gen_.set_state(s.latent_rng_state);
  }
  resumed_ = true;
  log_.info("resuming from {} at kimg {:.3f} (tick {}, iteration {})", latest->string(), cur_nimg_ / 1000.0, cur_tick_,
            batch_idx_);
  if (root()) {
    // Rows written after this checkpoint (a run killed between a tick and its checkpoint, or resumed from an older
    // one) are about to be written again: drop them, so that the history has each kimg once.
    drop_history_after(run_dir_ / "stats.jsonl", [](const nlohmann::json& j) {
      return j.at("Progress/kimg").at("mean").get<double>();
    });
    drop_history_after(run_dir_ / "metric-synth.jsonl", [](const nlohmann::json& j) { return j.at("kimg").get<double>(); });
  }
}

BatchContext Trainer::context_for_rows(const std::vector<int64_t>& rows, const at::Tensor& images) const {
  BatchContext ctx;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t k = renderer_->layout().total();
  at::Tensor coeffs = at::empty({n, k}, at::kFloat), crops = at::empty({n, 3}, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    auto loc = dataset_->locate(rows[static_cast<size_t>(i)]);
    loc.shard->read_annotation("coeffs", loc.row, coeffs[i].data_ptr<float>());
    loc.shard->read_annotation("crop", loc.row, crops[i].data_ptr<float>());
  }
  ctx.backgrounds = images;
  ctx.coeffs = coeffs.to(device_);
  ctx.crops = crops.to(device_);
  return ctx;
}

void Trainer::synth_metric() {
  if (!has_ground_truth_) return;
  at::NoGradGuard no_grad;
  if (!truth_textures_.defined()) truth_textures_ = world_truth_textures(*dataset_, 256);
  const SynthDistance d = generator_synth_distance(*G_ema_, truth_textures_);
  std::ofstream f(run_dir_ / "metric-synth.jsonl", std::ios::app);
  f << nlohmann::json{{"kimg", cur_nimg_ / 1000.0}, {"kid", d.kid}, {"colour", d.colour}, {"synth_distance", d.total()}}
           .dump()
    << "\n";
  log_.info("synth_distance {:.4f} (kid {:.4f}, colour {:.4f}) at kimg {:.3f}", d.total(), d.kid, d.colour,
            cur_nimg_ / 1000.0);
}

void Trainer::iteration() {
  const OpCounts census_start = census_ ? census_->now() : OpCounts{};
  // Reals: one batch per rank, split into rounds.
  auto batch = loader_->next();
  FACETEX_CHECK_RUNTIME(batch && batch->size == batch_rank_, "loader delivered no full batch");
  const int r = batch->height;
  at::Tensor reals = kernels::normalize_images(
      at::from_blob(batch->data(), {batch->size, 3, r, r}, at::kByte).to(to_device_async_, /*non_blocking=*/true));
  cursor_ = batch->cursor_after;
  const auto real_chunks = reals.split(batch_gpu_);
  // Texture mode: the fakes' backgrounds and geometry, from a second stream of the same dataset.
  std::vector<BatchContext> contexts(static_cast<size_t>(rounds_));
  if (background_loader_) {
    auto bg = background_loader_->next();
    FACETEX_CHECK_RUNTIME(bg && bg->size == batch_rank_, "background loader delivered no full batch");
    background_cursor_ = bg->cursor_after;
    BatchContext all = context_for_rows(
        bg->rows, kernels::normalize_images(
                      at::from_blob(bg->data(), {bg->size, 3, r, r}, at::kByte).to(to_device_async_, /*non_blocking=*/true)));
    for (int64_t round = 0; round < rounds_; ++round) {
      contexts[static_cast<size_t>(round)] = {all.backgrounds.narrow(0, round * batch_gpu_, batch_gpu_),
                                              all.coeffs.narrow(0, round * batch_gpu_, batch_gpu_),
                                              all.crops.narrow(0, round * batch_gpu_, batch_gpu_)};
    }
  }

  // Latents for every phase, drawn every iteration as the reference does (len(phases) * batch).
  const Phase phases[4] = {Phase::kGmain, Phase::kGreg, Phase::kDmain, Phase::kDreg};
  const int intervals[4] = {1, o_.G_reg_interval, 1, o_.D_reg_interval};
  at::Tensor all_z = at::randn({4 * o_.batch, o_.G.z_dim}, latent_gen_).to(to_device_async_, /*non_blocking=*/true);
  for (int k = 0; k < 4; ++k) {
    if (batch_idx_ % intervals[k] != 0) continue;
    const auto t0 = Clock::now();
    const OpCounts phase_start = census_ ? census_->now() : OpCounts{};
    const bool g_phase = phases[k] == Phase::kGmain || phases[k] == Phase::kGreg;
    torch::nn::Module& module = g_phase ? static_cast<torch::nn::Module&>(*G_) : *D_;
    Adam& opt = g_phase ? *opt_G_ : *opt_D_;
    // This rank's latents: global rows rank, rank + W, ... — the rows whose backgrounds and geometry this rank's
    // loader streams (formats.md, "Which rank reads what"), so each latent meets the same face as with one rank.
    const auto z_chunks =
        all_z.narrow(0, k * o_.batch, o_.batch).slice(0, world_.rank, o_.batch, world_.size).split(batch_gpu_);
    cluster::GradientReducer* reducer = g_phase ? reducer_G_.get() : reducer_D_.get();
    opt.zero_grad();
    set_requires_grad(module, true);
    for (int64_t round = 0; round < rounds_; ++round) {
      // Average across ranks in the last backward of the last round only (the reference's ddp_sync).
      if (reducer && round == rounds_ - 1) loss_->before_final_backward = [reducer] { reducer->arm(); };
      loss_->accumulate_gradients(phases[k], real_chunks[round], z_chunks[round], contexts[static_cast<size_t>(round)],
                                  intervals[k]);
    }
    loss_->before_final_backward = nullptr;
    if (reducer && reducer->armed()) {  // not armed: this phase ran no backward on any rank (e.g. pl_weight = 0)
      const cluster::ReductionStats rs = reducer->finish();
      metrics_.allreduce_bytes.inc(static_cast<double>(rs.bytes));
      metrics_.allreduce_seconds.observe(rs.comm_seconds);
      metrics_.allreduce_exposed.observe(rs.exposed_seconds);
      if (log_.should_log(spdlog::level::trace)) {
        double sum = 0;
        for (auto& t : module.parameters(true)) {
          if (t.grad().defined()) sum += t.grad().to(at::kDouble).abs().sum().item<double>();
        }
        log_.trace("{} reduced {} buckets ({} started during backward), |grad| sum {:.17g}", phase_name(phases[k]),
                   rs.buckets, rs.buckets_before_finish, sum);
      }
    }
    set_requires_grad(module, false);
    opt.sanitize_gradients();  // counted on the device, reported per tick
    opt.step();
    // Host time: with a GPU it ends when the phase's work is queued, not done (the next sync waits for it).
    metrics_.phase(phases[k]).observe(seconds(t0, Clock::now()));
    if (census_) {
      census_phase_[k] += census_->now() - phase_start;
      census_phase_runs_[k] += 1;
    }
  }

  // G_ema: p_ema <- p + beta (p_ema - p), beta = 0.5 ** (batch / ema_nimg); buffers copied.
  {
    at::NoGradGuard no_grad;
    double ema_nimg = o_.ema_kimg * 1000;
    if (o_.ema_rampup) ema_nimg = std::min(ema_nimg, cur_nimg_ * *o_.ema_rampup);
    const double beta = std::pow(0.5, o_.batch / std::max(ema_nimg, 1e-8));
    auto pe = G_ema_->parameters(true), p = G_->parameters(true);
    for (size_t i = 0; i < pe.size(); ++i) pe[i].copy_(p[i].lerp(pe[i], beta));
    auto be = G_ema_->buffers(true), b = G_->buffers(true);
    for (size_t i = 0; i < be.size(); ++i) be[i].copy_(b[i]);
  }
  cur_nimg_ += o_.batch;
  batch_idx_ += 1;
  metrics_.images.inc(static_cast<double>(batch_rank_));  // this rank's share: the job's sum is the global batch
  if (ada_) {
    // The ADA statistic is summed over ranks, so every rank computes the same p (spec §5.1).
    const auto sum_over_ranks = [this](const std::array<double, 2>& local) {
      at::Tensor t = at::tensor({local[0], local[1]}, at::kDouble);
      comm_->allreduce(t);
      return std::array<double, 2>{t[0].item<double>(), t[1].item<double>()};
    };
    if (ada_->step(o_.batch, sum_over_ranks)) augment_->set_p(ada_->p());
  }
  if (census_) {
    census_iteration_ += census_->now() - census_start;
    census_iterations_ += 1;
  }
}

void Trainer::write_grids(const std::string& suffix) {
  at::NoGradGuard no_grad;
  models::stylegan2::SynthesisOptions o;
  o.noise_mode = models::stylegan2::NoiseMode::kConst;
  at::Tensor fakes = G_ema_->forward(grid_z_, {}, o);
  if (grid_renderer_) {
    write_image_grid((run_dir_ / fmt::format("textures-{}.png", suffix)).string(), fakes);
    fakes = grid_renderer_->render_into(fakes, grid_context_.coeffs, grid_context_.crops, grid_context_.backgrounds);
  }
  write_image_grid((run_dir_ / fmt::format("fakes-{}.png", suffix)).string(), fakes);
}

TrainState Trainer::capture_state() const {
  TrainState s;
  s.cur_nimg = cur_nimg_;
  s.batch_idx = batch_idx_;
  s.cur_tick = cur_tick_;
  s.tick_start_nimg = tick_start_nimg_;
  s.training_seconds = training_seconds_ + seconds(start_time_, Clock::now());
  s.augment_p = augment_ ? augment_->p() : 0.0;
  if (ada_) s.ada_state = ada_->state().to_json().dump();
  s.pl_mean = loss_->pl_mean.item<double>();
  s.loader_cursor = cursor_;
  s.background_cursor = background_cursor_;
  {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cpu_rng_state = gen.get_state();
  }
  {
    std::lock_guard<std::mutex> lock(latent_gen_.mutex());
    s.latent_rng_state = latent_gen_.get_state();
  }
  if (device_.is_cuda()) {
    at::Generator gen = at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cuda_rng_state = gen.get_state();
  }
  s.stats_names = stats_.names();
  s.stats_values = stats_.flatten();
  s.config_toml = config_.to_toml();
  return s;
}

void Trainer::checkpoint() {
  const auto t0 = Clock::now();
  check_consistency();
  TrainState state = capture_state();
  // Every rank's generator state, so that a resume with the same number of ranks continues each rank's stream.
  if (world_.size > 1) {
    state.cpu_rng_state = comm_->allgather(state.cpu_rng_state);
    if (state.cuda_rng_state.defined()) state.cuda_rng_state = comm_->allgather(state.cuda_rng_state);
    // And every rank's pl_mean (each rank's own running mean, as the reference keeps it).
    const at::Tensor all = comm_->allgather(at::tensor({state.pl_mean}, at::kDouble)).to(at::kCPU).contiguous();
    state.pl_mean_ranks.assign(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
  }
  if (!root()) {
    comm_->barrier();  // rank 0 is writing; nobody leaves (e.g. exit 75) before the checkpoint is published
    return;
  }
  CheckpointNetworks n;
  const std::string gk = models::stylegan2::to_init_kwargs(o_.G), dk = models::stylegan2::to_init_kwargs(o_.D);
  n.G = models::network_state(*G_, "Generator", gk);
  n.D = models::network_state(*D_, "Discriminator", dk);
  n.G_ema = models::network_state(*G_ema_, "Generator", gk);
  const fs::path path = checkpoint_path(run_dir_, cur_nimg_);
  save_checkpoint(path, n, *opt_G_, *opt_D_, state);
  publish_checkpoint(run_dir_, path, o_.keep_checkpoints);
  if (world_.size > 1) comm_->barrier();
  const double s = seconds(t0, Clock::now());
  metrics_.checkpoint.observe(s);
  log_.info("checkpoint {} ({:.1f} s)", path.string(), s);
}

void Trainer::tick(bool done) {
  const auto now = Clock::now();
  const double tick_s = seconds(tick_start_time_, now);
  const double total_s = training_seconds_ + seconds(start_time_, now);
  const double tick_kimg = (cur_nimg_ - tick_start_nimg_) / 1000.0;
  // Non-finite gradient entries replaced since the last tick (counted on the device: one sync here).
  for (const auto& [name, opt] : {std::pair<const char*, Adam*>{"G (Gmain, Greg)", opt_G_.get()},
                                  std::pair<const char*, Adam*>{"D (Dmain, Dreg)", opt_D_.get()}}) {
    if (const int64_t bad = opt->take_nonfinite_count(); bad > 0) {
      metrics_.nan.inc(static_cast<double>(bad));
      stats_.report("Train/nonfinite_gradients", static_cast<double>(bad));
      log_.warn("{}: replaced {} non-finite gradient entries since the last tick (NaN -> 0, +-Inf -> +-1e5)", name, bad);
    }
  }
  stats_.report("Progress/tick", static_cast<double>(cur_tick_));
  stats_.report("Progress/kimg", cur_nimg_ / 1000.0);
  stats_.report("Progress/augment", augment_ ? augment_->p() : 0.0);
  stats_.report("Timing/total_sec", total_s);
  stats_.report("Timing/sec_per_tick", tick_s);
  if (tick_kimg > 0) stats_.report("Timing/sec_per_kimg", tick_s / tick_kimg);
  stats_.report("Timing/maintenance_sec", maintenance_seconds_);
  stats_.report("Resources/cpu_mem_gb", resident_gb());
  log_.info("tick {:<5d} kimg {:<8.3f} time {:<12s} sec/tick {:<7.1f} sec/kimg {:<8.2f} maintenance {:<5.1f} "
            "cpumem {:<5.2f} augment {:.3f}",
            cur_tick_, cur_nimg_ / 1000.0, format_duration(total_s), tick_s,
            tick_kimg > 0 ? tick_s / tick_kimg : 0.0, maintenance_seconds_, resident_gb(),
            augment_ ? augment_->p() : 0.0);
  if (census_ && census_iterations_ > 0) {
    log_.info("op census, per iteration over {} iterations: {}", census_iterations_,
              census_iteration_.str(double(census_iterations_)));
    for (int k = 0; k < 4; ++k) {
      if (census_phase_runs_[k] == 0) continue;
      log_.info("op census, per {} run ({} runs): {}", phase_name(static_cast<Phase>(k)), census_phase_runs_[k],
                census_phase_[k].str(double(census_phase_runs_[k])));
    }
    if (param_OpCensus() >= 2) {
      std::string top;
      for (const auto& [name, n] : OpCensus::top_operators(25)) {
        top += fmt::format("{}{} {:.1f}", top.empty() ? "" : ", ", name, double(n) / census_iterations_);
      }
      log_.info("op census, most called per iteration: {}", top);
    }
    census_iteration_ = {};
    census_iterations_ = 0;
    for (int k = 0; k < 4; ++k) census_phase_[k] = {}, census_phase_runs_[k] = 0;
  }
  sync_stats();
  const auto collected = stats_.collect();
  if (world_.size > 1) {
    // Every rank must be training the same job: the same ADA p (bit for bit — it comes from integer sign counts) and
    // the same collected statistics (to rounding: the allreduce may add in another order on each rank).
    double digest = 0;
    for (const auto& [name, m] : collected) digest += m.count + m.mean();
    at::Tensor lo = at::tensor({digest, -digest}, at::kDouble);
    comm_->allreduce(lo, cluster::ReduceOp::kMin);
    const double spread = std::abs(digest - lo[0].item<double>()) + std::abs(digest + lo[1].item<double>());
    const bool same_p = comm_->agree(augment_ ? augment_->p() : 0.0);
    FACETEX_CHECK_RUNTIME(same_p && spread <= 1e-9 * (1 + std::abs(digest)),
                          "tick {}: ranks disagree ({}; statistics digest spread {:.3g}) — rank {} has p = {}",
                          cur_tick_, same_p ? "same ADA p" : "ADA p differs", spread, world_.rank,
                          augment_ ? augment_->p() : 0.0);
    if (cur_tick_ == 0) {
      log_.info("rank statistics agree: ADA p and {} statistics identical on {} ranks (checked every tick)",
                collected.size(), world_.size);
    }
  }
  if (root()) {
    std::ofstream f(run_dir_ / "stats.jsonl", std::ios::app);
    f << stats_json_line(collected, std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count())
      << "\n";
  }
  for (const auto& [name, term] : std::vector<std::pair<std::string, std::string>>{
           {"Loss/G/loss", "G"}, {"Loss/G/reg", "G_reg"}, {"Loss/D/loss", "D"}, {"Loss/D/reg", "D_reg"},
           {"Loss/pl_penalty", "pl_penalty"}, {"Loss/r1_penalty", "r1_penalty"}}) {
    auto it = collected.find(name);
    if (it != collected.end()) metrics_.loss(term).set(it->second.mean());
  }
  metrics_.kimg.set(cur_nimg_ / 1000.0);
  metrics_.gpu_memory.set(static_cast<double>(kernels::gpu_memory_used_bytes(device_)));
  metrics_.augment_p.set(augment_ ? augment_->p() : 0.0);

  const auto maintenance_start = Clock::now();
  const bool snapshot = done || cur_tick_ % o_.snap_ticks == 0;
  // The tick is over before its snapshot: the checkpoint holds the state the next tick starts from (as a
  // preemption checkpoint does), so a resume ticks where a straight run would, not once more at once.
  cur_tick_ += 1;
  tick_start_nimg_ = cur_nimg_;
  if (snapshot) {
    if (root()) {
      write_grids(fmt::format("{:09.3f}", cur_nimg_ / 1000.0));
      synth_metric();
    }
    checkpoint();
  }
  tick_start_time_ = Clock::now();
  maintenance_seconds_ = seconds(maintenance_start, tick_start_time_);
}

void Trainer::broadcast_networks() {
  if (world_.size == 1) return;
  at::NoGradGuard no_grad;
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(G_.get()), static_cast<torch::nn::Module*>(D_.get())}) {
    for (auto& t : m->parameters(true)) comm_->broadcast(t, 0);
    for (auto& t : m->buffers(true)) comm_->broadcast(t, 0);
  }
}

// The reference's check_ddp_consistency at snapshot time: every parameter and buffer equals rank 0's, except
// w_avg, which each rank tracks from its own latents (spec §5.1).
void Trainer::check_consistency() {
  if (world_.size == 1) return;
  at::NoGradGuard no_grad;
  int64_t checked = 0;
  for (auto& [net, m] : std::vector<std::pair<std::string, torch::nn::Module*>>{
           {"G", G_.get()}, {"D", D_.get()}, {"G_ema", G_ema_.get()}}) {
    for (const auto& items : {m->named_parameters(true), m->named_buffers(true)}) {
      for (const auto& item : items) {
        if (item.key().find("w_avg") != std::string::npos) continue;
        at::Tensor mine = item.value().contiguous();
        at::Tensor theirs = mine.clone();
        comm_->broadcast(theirs, 0);
        const bool same = at::equal(mine, theirs);
        FACETEX_CHECK_RUNTIME(comm_->any(!same) == false,
                              "consistency check at kimg {:.3f}: {}.{} differs between ranks (rank {} {})",
                              cur_nimg_ / 1000.0, net, item.key(), world_.rank, same ? "agrees" : "differs");
        ++checked;
      }
    }
  }
  log_.debug("consistency check: {} tensors identical on {} ranks", checked, world_.size);
}

// Sums every rank's pending [count, sum, sum_sq] so stats.jsonl and the loss gauges describe the whole job. Ranks may
// have reported different names (e.g. non-finite gradient counts), so the union of names is agreed first.
void Trainer::sync_stats() {
  if (world_.size == 1) return;
  std::string joined;
  for (const auto& n : stats_.names()) joined += n + '\n';
  at::Tensor len = at::full({1}, static_cast<int64_t>(joined.size()), at::kLong);
  comm_->allreduce(len, cluster::ReduceOp::kMax);
  at::Tensor bytes = at::zeros({len.item<int64_t>() + 1}, at::kByte);
  std::memcpy(bytes.data_ptr<uint8_t>(), joined.data(), joined.size());
  const at::Tensor all = comm_->allgather(bytes);
  std::map<std::string, Moments>& pending = stats_.pending();
  for (int64_t r = 0; r < all.size(0); ++r) {
    const std::string text(reinterpret_cast<const char*>(all[r].data_ptr<uint8_t>()));
    size_t start = 0;
    for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
      pending[text.substr(start, end - start)];  // the union: absent names get empty moments
    }
  }
  std::vector<double> flat = stats_.flatten();
  at::Tensor t = at::from_blob(flat.data(), {static_cast<int64_t>(flat.size())}, at::kDouble).clone();
  comm_->allreduce(t);
  flat.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  stats_.restore(stats_.names(), flat);
}

// Each rank continues its own generator streams (CPU, and CUDA where the run trains on a GPU: noise, augmentation and
// mixing draws). Checkpoints hold [L] for one rank or [W, L] for W ranks.
void Trainer::restore_rank_rng(const TrainState& s) {
  const int64_t saved_ranks = s.cpu_rng_state.dim() == 2 ? s.cpu_rng_state.size(0) : 1;
  const bool same_world = saved_ranks == world_.size;
  const uint64_t reseed = (o_.seed * 1000003ULL + static_cast<uint64_t>(s.batch_idx)) * world_.size + world_.rank;
  auto restore = [&](at::Generator gen, const at::Tensor& saved) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (same_world && saved.defined()) {
      gen.set_state(saved.dim() == 2 ? saved[world_.rank].contiguous() : saved);
    } else {
      gen.set_current_seed(reseed);  // another rank count (or a CPU checkpoint on a GPU): new streams, reproducible
    }
  };
  restore(at::detail::getDefaultCPUGenerator(), s.cpu_rng_state);
  if (device_.is_cuda()) restore(at::globalContext().defaultGenerator(device_), s.cuda_rng_state);
  if (!same_world) {
    log_.info("checkpoint written by {} ranks, resuming on {}: per-rank random streams reseeded", saved_ranks,
              world_.size);
  }
}

TrainResult Trainer::run(int64_t max_steps) {
  setup();
  cluster::install_preemption_handlers();
  resume_or_start();
  // Only a start that got this far records its settings: a refused or failed one leaves config.toml as it was.
  if (root()) write_file_atomic(run_dir_ / "config.toml", config_.to_toml());
  data::LoaderOptions lo;
  lo.batch = batch_rank_;
  lo.rank = world_.rank;
  lo.world = world_.size;
  lo.seed = o_.seed;
  lo.threads = o_.loader_threads;
  lo.xflip = o_.xflip;
  lo.start = cursor_;
  loader_ = std::make_unique<data::StreamingLoader>(dataset_, lo);
  if (renderer_) {
    // Backgrounds: the same dataset in another order, never mirrored (their geometry annotations must hold).
    data::LoaderOptions bo = lo;
    bo.seed = o_.seed + 1;
    bo.xflip = false;
    bo.start = background_cursor_;
    background_loader_ = std::make_unique<data::StreamingLoader>(dataset_, bo);
  }
  start_time_ = tick_start_time_ = Clock::now();
  TrainResult result;
  result.resumed = resumed_;
  result.rank = world_.rank;
  if (cur_nimg_ >= static_cast<int64_t>(o_.total_kimg * 1000)) {
    // A finished run launched again (e.g. a requeue after the last checkpoint): nothing to do, nothing rewritten.
    log_.info("the run already reached kimg {:.3f} (run.total_kimg {}): nothing to train", cur_nimg_ / 1000.0,
              o_.total_kimg);
    result.cur_nimg = cur_nimg_;
    return result;
  }
  std::unique_ptr<ProfileWindow> profile;
  const int64_t profile_from = param_ProfileStart(), profile_to = profile_from + param_ProfileIterations();
  for (;;) {
    // A profiler that cannot start or stop (e.g. CUPTI refused in a container) costs the profile, not the run.
    if (profile_to > profile_from && result.steps_run == profile_from) {
      try {
        profile = std::make_unique<ProfileWindow>(device_.is_cuda());
      } catch (const std::exception& e) {
        log_.warn("FACETEX_PROFILE_ITERATIONS: the profiler did not start, no profile: {}", e.what());
      }
    }
    iteration();
    ++result.steps_run;
    if (profile && result.steps_run == profile_to) {
      try {
        const std::string text = profile->stop(profile_to - profile_from).text();
        log_.info("{}", text.substr(0, text.size() - 1));
        if (root()) write_file_atomic(run_dir_ / "profile.txt", text);
      } catch (const std::exception& e) {
        log_.warn("FACETEX_PROFILE_ITERATIONS: the profile could not be summarised: {}", e.what());
      }
      profile.reset();
    }
    const bool done = cur_nimg_ >= static_cast<int64_t>(o_.total_kimg * 1000);
    if (done || cur_tick_ == 0 || cur_nimg_ >= tick_start_nimg_ + static_cast<int64_t>(o_.kimg_per_tick * 1000)) {
      tick(done);
    }
    if (done) break;
    // Ranks agree on a preemption at the step boundary: a signal seen by any rank stops all of them here.
    const bool preempted = comm_->any(cluster::preemption_requested());
    if (preempted || (max_steps >= 0 && result.steps_run >= max_steps)) {
      if (preempted) {
        log_.warn("{}: writing a checkpoint and exiting with 75 (requeue to resume)",
                  cluster::preemption_requested() ? fmt::format("signal {} received", cluster::preemption_signal())
                                                  : std::string("another rank was signalled"));
      }
      checkpoint();
      result.exit_code = static_cast<int>(ExitCode::kPreempted);
      break;
    }
  }
  result.cur_nimg = cur_nimg_;
  if (result.exit_code == 0) log_.info("training finished at kimg {:.3f}", cur_nimg_ / 1000.0);
  return result;
}

}  // namespace

TrainResult run_training(const TrainOptions& options, const Config& config, int64_t max_steps) {
  Trainer trainer(options, config);
  return trainer.run(max_steps);
}

}  // namespace facetex::train
