// The training loop end to end on a tiny synthetic world (texture mode, CPU): exact resume (N steps straight vs
// N/2 + stop + resume + N/2 give bit-identical networks, optimiser states, ADA state and cursors), preemption by a
// real SIGUSR1 (checkpoint, exit 75, resume continues), and a SIGKILL during checkpoint writes never leaving a
// damaged checkpoint under a final name.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>

#include "cluster/preemption.h"
#include "data/dataset.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5.h"
#include "models/weights/weight_file.h"
#include "tests/support/fixtures.h"
#include "tests/support/shard_bytes.h"
#include "train/checkpoint.h"
#include "train/face_renderer.h"
#include "train/synthetic_world.h"
#include "train/train_options.h"
#include "train/training_loop.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::train;

namespace {

// One small world shared by the tests of this file.
const fs::path& world() {
  static test::TempDir owner;  // removed at exit (forked writers leave with _exit and never run destructors)
  static test::TempDir* dir = &owner;
  static bool made = [] {
    SyntheticWorldOptions o;
    o.out = dir->path() / "world";
    o.count = 48;
    o.resolution = 32;
    o.texture_resolution = 32;
    o.shard_size = 20;
    o.model_grid = 16;
    write_synthetic_world(o);
    return true;
  }();
  (void)made;
  static const fs::path p = dir->path() / "world";
  return p;
}

Config tiny_config(const fs::path& run_dir, double total_kimg = 1.0) {
  const fs::path w = world();
  return Config::parse(fmt::format(R"(
[model]
mode = "texture"
resolution = 32
texture_resolution = 32
z_dim = 16
w_dim = 16
mapping_layers = 2
channel_base = 128
channel_max = 16
mbstd_group = 2
face_model_mat = "{0}/model.mat"
face_model_uv = "{0}/uv.npy"
[data]
shards = "{0}/shards"
threads = 1
xflip = true
[train]
batch = 4
batch_gpu = 2
r1_gamma = 0.05
ema_kimg = 0.01
ema_rampup = 0.05
G_reg_interval = 2
D_reg_interval = 3
[augment]
mode = "ada"
interval = 2
kimg = 0.5
[run]
dir = "{1}"
total_kimg = {2}
kimg_per_tick = 0.008
snap_ticks = 3
keep_checkpoints = 2
grid_images = 4
)",
                                   w.string(), run_dir.string(), total_kimg));
}

// Every tensor of every network and optimiser plus the training state of a checkpoint.
struct Snapshot {
  std::map<std::string, at::Tensor> tensors;
  TrainState state;
};

Snapshot snapshot(const fs::path& ckpt) {
  // Optimisers are rebuilt with the checkpoint's parameter names and shapes.
  auto nets = models::read_weight_file(ckpt);
  auto params = [&](const std::string& net) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (auto& [n, t] : nets.at(net).tensors) {
      if (n.find("resample_filter") == std::string::npos && n.find("noise_const") == std::string::npos &&
          n.find("w_avg") == std::string::npos) {
        out.emplace_back(n, at::zeros_like(t));
      }
    }
    return out;
  };
  Adam opt_G(params("G"), {}), opt_D(params("D"), {});
  auto [loaded, state] = load_checkpoint(ckpt, opt_G, opt_D);
  Snapshot s;
  s.state = state;
  for (auto* w : {&loaded.G, &loaded.D, &loaded.G_ema}) {
    const std::string tag = w == &loaded.G ? "G/" : w == &loaded.D ? "D/" : "G_ema/";
    for (auto& [n, t] : w->tensors) s.tensors[tag + n] = t;
  }
  for (auto& st : opt_G.state()) {
    s.tensors["optG/" + st.name + "/m"] = st.exp_avg;
    s.tensors["optG/" + st.name + "/v"] = st.exp_avg_sq;
  }
  for (auto& st : opt_D.state()) {
    s.tensors["optD/" + st.name + "/m"] = st.exp_avg;
    s.tensors["optD/" + st.name + "/v"] = st.exp_avg_sq;
  }
  return s;
}

fs::path latest(const fs::path& run) {
  auto p = find_latest_checkpoint(run);
  EXPECT_TRUE(p.has_value()) << run;
  return p.value_or(fs::path());
}

}  // namespace

TEST(TrainingLoop, ResumeIsBitExact) {
  test::TempDir tmp;
  const int64_t N = 8;
  // Straight: N iterations, then stop (a checkpoint like a preemption).
  const Config a = tiny_config(tmp / "straight");
  TrainResult ra = run_training(parse_train_options(a), a, N);
  EXPECT_EQ(ra.exit_code, 75);
  EXPECT_EQ(ra.steps_run, N);
  // Split: N/2, stop, resume, N/2.
  const Config b = tiny_config(tmp / "split");
  TrainResult rb1 = run_training(parse_train_options(b), b, N / 2);
  EXPECT_FALSE(rb1.resumed);
  TrainResult rb2 = run_training(parse_train_options(b), b, N / 2);
  EXPECT_TRUE(rb2.resumed);
  EXPECT_EQ(rb2.cur_nimg, ra.cur_nimg);

  Snapshot sa = snapshot(latest(tmp / "straight")), sb = snapshot(latest(tmp / "split"));
  ASSERT_EQ(sa.tensors.size(), sb.tensors.size());
  for (const auto& [name, t] : sa.tensors) {
    ASSERT_TRUE(sb.tensors.count(name)) << name;
    EXPECT_TRUE(at::equal(t, sb.tensors.at(name))) << name << " differs after resume";
  }
  EXPECT_EQ(sa.state.cur_nimg, sb.state.cur_nimg);
  EXPECT_EQ(sa.state.batch_idx, sb.state.batch_idx);
  EXPECT_EQ(sa.state.ada_state, sb.state.ada_state);
  EXPECT_EQ(sa.state.pl_mean, sb.state.pl_mean);
  EXPECT_EQ(sa.state.loader_cursor, sb.state.loader_cursor);
  EXPECT_EQ(sa.state.background_cursor, sb.state.background_cursor);
  EXPECT_TRUE(at::equal(sa.state.cpu_rng_state, sb.state.cpu_rng_state));
  // The run folder has what a user expects.
  for (const char* f : {"config.toml", "log.txt", "stats.jsonl", "reals.png", "fakes-init.png", "textures-init.png",
                        "init.h5", "metric-synth.jsonl"}) {
    EXPECT_TRUE(fs::exists(tmp / "split" / f)) << f;
  }
}

// (tick, kimg) of every stats.jsonl row, or (-1, kimg) of every metric-synth.jsonl row.
std::vector<std::pair<double, double>> history_rows(const fs::path& file) {
  std::vector<std::pair<double, double>> rows;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("Progress/tick")) {
      rows.emplace_back(j["Progress/tick"]["mean"].get<double>(), j["Progress/kimg"]["mean"].get<double>());
    } else {
      rows.emplace_back(-1.0, j["kimg"].get<double>());
    }
  }
  return rows;
}

// A run stopped at the end of a tick and resumed ticks exactly where a straight run does: the tick's checkpoint
// holds the state after the tick (it once held the state before it, and the resumed run ticked again at once under
// the same number). Rows written after the checkpoint (a run killed between a tick and its checkpoint) are dropped
// on resume rather than repeated.
TEST(TrainingLoop, ResumedRunTicksAndRecordsLikeAStraightRun) {
  test::TempDir tmp;
  // Ticks (0.008 kimg, batch 4) fall at 0.004, 0.012, 0.020, ...: the first part ends on one of them.
  const Config straight = tiny_config(tmp / "straight", 0.044);
  ASSERT_EQ(run_training(parse_train_options(straight), straight).exit_code, 0);
  const Config first = tiny_config(tmp / "split", 0.020), second = tiny_config(tmp / "split", 0.044);
  ASSERT_EQ(run_training(parse_train_options(first), first).exit_code, 0);
  {  // rows of a tick whose checkpoint never got written
    std::ofstream(tmp / "split" / "stats.jsonl", std::ios::app)
        << R"({"Progress/tick": {"num": 1, "mean": 9, "std": 0}, "Progress/kimg": {"num": 1, "mean": 0.04, "std": 0}})"
        << "\n";
    std::ofstream(tmp / "split" / "metric-synth.jsonl", std::ios::app) << R"({"kimg": 0.04, "synth_distance": 1})" << "\n";
  }
  const TrainResult r = run_training(parse_train_options(second), second);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.resumed);
  const auto a = history_rows(tmp / "straight" / "stats.jsonl"), b = history_rows(tmp / "split" / "stats.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first) << "row " << i;
    EXPECT_NEAR(a[i].second, b[i].second, 1e-9) << "row " << i;
  }
  // The synthetic-world metric: each kimg once, in order (the split run has one more, at its first part's end).
  const auto m = history_rows(tmp / "split" / "metric-synth.jsonl");
  for (size_t i = 1; i < m.size(); ++i) EXPECT_GT(m[i].second, m[i - 1].second) << "row " << i;
}

// Checkpoint files that are all unreadable (truncated, or HDF5 that is not a checkpoint) stop the start with a data
// error naming them: starting over would write into this run's folder as if it were new, and prune its files.
TEST(TrainingLoop, UnreadableCheckpointsAreAnErrorNotANewRun) {
  test::TempDir tmp;
  const Config c = tiny_config(tmp / "run", 0.008);
  ASSERT_EQ(run_training(parse_train_options(c), c).exit_code, 0);
  std::vector<fs::path> ckpts;
  for (const auto& e : fs::directory_iterator(tmp / "run" / "checkpoints"))
    if (e.path().filename().string().rfind("ckpt-", 0) == 0) ckpts.push_back(e.path());
  ASSERT_FALSE(ckpts.empty());
  for (const fs::path& p : ckpts) fs::resize_file(p, 4000);
  fs::copy_file(tmp / "run" / "init.h5", ckpts.front(), fs::copy_options::overwrite_existing);  // HDF5, not ours
  const std::string config_before = test::read_bytes(tmp / "run" / "config.toml");
  try {
    run_training(parse_train_options(c), c);
    ADD_FAILURE() << "started over in a run folder whose checkpoints are unreadable";
  } catch (const facetex::DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("none readable"), std::string::npos) << m;
    EXPECT_NE(m.find("not a facetex checkpoint"), std::string::npos) << m;
  }
  for (const fs::path& p : ckpts) EXPECT_TRUE(fs::exists(p)) << p;
  EXPECT_EQ(test::read_bytes(tmp / "run" / "config.toml"), config_before);
}

// A byte flipped on disk inside the newest checkpoint's values: resume passes it over for the previous one (as a
// truncated one) instead of training on garbage; leftovers of interrupted checkpoint writes are removed.
TEST(TrainingLoop, DamagedCheckpointIsPassedOverAndWriteLeftoversGo) {
  test::TempDir tmp;
  const Config c = tiny_config(tmp / "run");
  ASSERT_EQ(run_training(parse_train_options(c), c, 2).exit_code, 75);
  const fs::path first = latest(tmp / "run");
  ASSERT_EQ(run_training(parse_train_options(c), c, 2).exit_code, 75);
  const fs::path second = latest(tmp / "run");
  ASSERT_NE(first, second);
  std::string damaged;
  {
    h5::Id f = h5::open_file(second.string());
    for (const std::string& n : h5::child_names(h5::open_group(f, "train/opt_G"))) {
      if (n.size() > 11 && n.compare(n.size() - 11, 11, ".exp_avg_sq") == 0) damaged = "train/opt_G/" + n;
    }
  }
  ASSERT_FALSE(damaged.empty());
  test::flip_byte(second, test::contiguous_file_offset(second, damaged) + 2);
  try {
    snapshot(second);
    ADD_FAILURE() << "a damaged checkpoint loaded";
  } catch (const facetex::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("do not match their CRC-32"), std::string::npos) << e.what();
  }
  EXPECT_EQ(latest(tmp / "run"), first);  // passed over
  const int64_t first_nimg = snapshot(first).state.cur_nimg;
  const fs::path leftover = tmp / "run" / "checkpoints" / "ckpt-000000000999.h5.partial-host-1-0";
  test::write_bytes(leftover, "an interrupted write");
  TrainResult r = run_training(parse_train_options(c), c, 1);
  EXPECT_TRUE(r.resumed);
  EXPECT_EQ(r.cur_nimg, first_nimg + 4);
  EXPECT_FALSE(fs::exists(leftover));
}

// A network setting unset when the run started and set now to another value than its default changes the shapes:
// refused by name before anything loads (it used to pass as a changed setting and fail on the first tensor).
TEST(TrainingLoop, ResumeComparesResolvedNetworkSettings) {
  test::TempDir tmp;
  Config c = tiny_config(tmp / "run");
  ASSERT_EQ(run_training(parse_train_options(c), c, 1).exit_code, 75);
  Config changed = c;
  changed.set("model.num_fp16_res=0");  // not a shape: a warning only
  EXPECT_EQ(run_training(parse_train_options(changed), changed, 1).exit_code, 75);
  // Written out: the run's own config sets every shape key; drop one and give another value than the default.
  Config unset = Config::parse(test::read_bytes(tmp / "run" / "config.toml"));
  ASSERT_TRUE(unset.has("model.mapping_layers"));
  std::string text = test::read_bytes(tmp / "run" / "config.toml");
  const size_t at = text.find("mapping_layers = 2");
  ASSERT_NE(at, std::string::npos) << text;
  text.erase(at, text.find('\n', at) - at);  // unset now: the default, 8 layers
  try {
    const Config now = Config::parse(text);
    run_training(parse_train_options(now), now, 1);
    ADD_FAILURE() << "resumed with 8 mapping layers on a 2-layer checkpoint";
  } catch (const facetex::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model.mapping_layers: 2 then, 8 (unset: the default) now"), std::string::npos)
        << e.what();
  }
}

TEST(TrainingLoop, SigusrOneCheckpointsExitsWith75AndTheNextLaunchResumes) {
  test::TempDir tmp;
  const Config c = tiny_config(tmp / "run", /*total_kimg=*/0.2);
  cluster::install_preemption_handlers();
  cluster::clear_preemption();
  // A real signal from another thread shortly after the start.
  std::thread killer([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(::getpid(), SIGUSR1);
  });
  TrainResult r = run_training(parse_train_options(c), c);
  killer.join();
  EXPECT_EQ(r.exit_code, 75) << "training finished before the signal; make it longer";
  EXPECT_EQ(cluster::preemption_signal(), SIGUSR1);
  const int64_t stopped_at = r.cur_nimg;
  EXPECT_EQ(snapshot(latest(tmp / "run")).state.cur_nimg, stopped_at);
  cluster::clear_preemption();
  TrainResult r2 = run_training(parse_train_options(c), c);
  EXPECT_TRUE(r2.resumed);
  EXPECT_EQ(r2.exit_code, 0);
  EXPECT_GE(r2.cur_nimg, 200);
  EXPECT_EQ(r2.cur_nimg, stopped_at + r2.steps_run * 4);
}

TEST(TrainingLoop, KillDuringCheckpointWritesNeverLeavesADamagedCheckpoint) {
  test::TempDir tmp;
  const Config c = tiny_config(tmp / "run");
  ASSERT_EQ(run_training(parse_train_options(c), c, 2).exit_code, 75);
  const fs::path good = tmp / "source.h5";  // a copy: the writers' retention deletes old checkpoints
  fs::copy_file(latest(tmp / "run"), good);
  // A child process writes checkpoints in a loop; it is killed at arbitrary moments, many times.
  for (int trial = 0; trial < 6; ++trial) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The child never returns into the test framework: any failure ends it with a code the parent checks.
      try {
        auto nets = models::read_weight_file(good);
        CheckpointNetworks n{nets.at("G"), nets.at("D"), nets.at("G_ema")};
        Adam og({}, {}), od({}, {});
        TrainState s;
        s.cpu_rng_state = at::zeros({8}, at::kByte);
        for (int64_t k = 1;; ++k) {
          const fs::path p = checkpoint_path(tmp / "run", 1000000 + k);
          save_checkpoint(p, n, og, od, s);
          publish_checkpoint(tmp / "run", p, 3);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint writer failed: %s\n", e.what());
        _exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(40 + 37 * trial));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the writer stopped on its own";
    // Every checkpoint under a final name opens, and latest.h5 points at one of them.
    for (const auto& e : fs::directory_iterator(tmp / "run" / "checkpoints")) {
      const std::string name = e.path().filename().string();
      if (name.rfind("ckpt-", 0) != 0 || e.path().extension() != ".h5") continue;
      EXPECT_NO_THROW(h5::open_file(e.path().string())) << name;
    }
    auto found = find_latest_checkpoint(tmp / "run");
    ASSERT_TRUE(found.has_value());
    EXPECT_NO_THROW(models::read_weight_file(*found));
  }
}

TEST(SyntheticWorld, AnnotationsReproduceEveryImageExactly) {
  // Re-rendering each stored ground-truth texture with its stored geometry gives back the stored image.
  auto model = load_world_model(world());
  FaceRenderer renderer(model);
  at::Generator gen = at::detail::createCPUGenerator(0);
  auto ds = data::Dataset::open(world() / "shards");
  int64_t faces = 0;
  for (int64_t i = 0; i < 6; ++i) {
    auto loc = ds->locate(i);
    std::string scratch;
    at::Tensor img = at::empty({3, 32, 32}, at::kByte);
    loc.shard->read_chw(loc.row, false, img.data_ptr<uint8_t>(), scratch);
    at::Tensor coeffs = at::empty({1, loc.shard->annotation_row_size("coeffs")});
    at::Tensor crop = at::empty({1, 3});
    at::Tensor tex = at::empty({32, 32, 3}, at::kByte);
    loc.shard->read_annotation("coeffs", loc.row, coeffs.data_ptr<float>());
    loc.shard->read_annotation("crop", loc.row, crop.data_ptr<float>());
    loc.shard->read_annotation("gt_texture", loc.row, tex.data_ptr<uint8_t>());
    at::Tensor texture = tex.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat) / 127.5 - 1;
    auto rendered = renderer.render(texture, coeffs, crop, 32);
    at::Tensor mask = rendered.mask[0][0] > 0;
    faces += mask.sum().item<int64_t>();
    at::Tensor ours = ((rendered.rgb[0] + 1) * 127.5).round().clamp(0, 255).to(at::kByte);
    // Face pixels: within one level (the stored texture is itself rounded to uint8).
    at::Tensor diff = (ours.to(at::kInt) - img.to(at::kInt)).abs().masked_select(mask.unsqueeze(0).expand({3, 32, 32}));
    EXPECT_LE(diff.max().item<int>(), 2) << "image " << i;
  }
  EXPECT_GT(faces, 6 * 100) << "the faces should cover a good part of each 32x32 image";
  (void)gen;
}
