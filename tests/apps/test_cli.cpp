// The `facetex` binary end to end: --help, exit codes, one-line errors, config precedence.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using facetex::test::TempDir;
namespace test = facetex::test;

namespace {
// FACETEX_BINARY_PATH: the built executable, from CMake.
test::CommandResult run_facetex(const std::string& args) { return test::run_command(FACETEX_BINARY_PATH " " + args); }
int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }
}  // namespace

TEST(Cli, HelpListsSubcommandsAndExitCodes) {
  auto r = run_facetex("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("data"), std::string::npos);
  EXPECT_NE(r.out.find("75 preempted"), std::string::npos);
  r = run_facetex("data pack --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--storage"), std::string::npos);
  EXPECT_NE(r.out.find("[pack.storage]"), std::string::npos);
  r = run_facetex("version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("libtorch"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWith2AndOneLine) {
  for (const char* args : {"", "data", "data pack --images x", "data pack --images x --out y --bogus",
                           "nosuchcommand", "metrics fid --real x --fake y --device cuda:x",
                           "data verify x --threads -1"}) {
    auto r = run_facetex(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
  }
  // Global options: a port that is not a number, a subsystem that does not exist.
  for (const auto& [args, expected] :
       {std::pair<std::string, std::string>{"--metrics-port abc version", "'abc' is not a port number"},
        {"--log-level info,nosuchsys=debug version", "unknown log subsystem 'nosuchsys'"}}) {
    auto r = run_facetex(args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << args << ": " << r.err;
  }
  TempDir tmp;
  test::write_images(tmp / "in", 2, 16, 16);
  auto r = run_facetex("data pack --images " + (tmp / "in").string() + " --out " + (tmp / "o").string() +
                   " --storage tiff");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown storage 'tiff'"), std::string::npos) << r.err;
  r = run_facetex("--set pack.shard_size=many data pack --images " + (tmp / "in").string() + " --out " +
              (tmp / "o").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("pack.shard_size"), std::string::npos) << r.err;
  // A key the command does not read is a typo, not a setting to ignore: named, with the key it probably meant.
  const std::string pack = "data pack --images " + (tmp / "in").string() + " --out " + (tmp / "o").string();
  r = run_facetex("--set pack.shardsize=5 " + pack);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("unknown config key pack.shardsize (did you mean pack.shard_size?): facetex data pack"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(tmp / "o" / "dataset.json"));
  test::write_bytes(tmp / "typo.toml", "[pack]\nshard_sise = 5\n");
  r = run_facetex("--config " + (tmp / "typo.toml").string() + " " + pack);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("pack.shard_sise (did you mean pack.shard_size?)"), std::string::npos) << r.err;
  // A file that also configures other commands (a [train] or a shared [data] section) is fine.
  test::write_bytes(tmp / "shared.toml", "[pack]\nshard_size = 5\n[data]\nshards = \"x\"\n[train]\nlr_G = 0.002\n");
  r = run_facetex("--config " + (tmp / "shared.toml").string() + " " + pack);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cli, DataErrorsExitWith3NamingTheFile) {
  TempDir tmp;
  auto r = run_facetex("data pack --images " + (tmp / "missing").string() + " --out " + (tmp / "o").string());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find((tmp / "missing").string()), std::string::npos) << r.err;
  r = run_facetex("data stream " + tmp.path().string());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("no dataset.json"), std::string::npos) << r.err;
}

TEST(Cli, PackVerifyInspectStreamAndConfigPrecedence) {
  TempDir tmp;
  test::write_images(tmp / "in", 7, 24, 24);
  const std::string out = (tmp / "shards").string();
  // Config file says raw + shard size 2; --set overrides the shard size; the flag overrides the storage.
  test::write_bytes(tmp / "c.toml", "[pack]\nstorage = \"raw\"\nshard_size = 2\nimages = \"" + (tmp / "in").string() +
                                        "\"\n");
  auto r = run_facetex("--config " + (tmp / "c.toml").string() + " --set pack.shard_size=3 data pack --out " + out +
                   " --storage png");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("7 images in 3 shards"), std::string::npos) << r.out;
  r = run_facetex("data inspect " + out);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("storage      png"), std::string::npos) << r.out;
  r = run_facetex("data inspect " + out + " --sheet " + (tmp / "sheet.png").string() + " --rows 7 --tile 24");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "sheet.png"));
  // Options of the sheet without a sheet are a mistake to name, not to ignore.
  r = run_facetex("data inspect " + out + " --tile 24");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("give --sheet PATH.png too"), std::string::npos) << r.err;
  r = run_facetex("data verify " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run_facetex("data stream " + out + " --batch 2 --epochs 2 --threads 2");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stream: 14 images in 7 batches"), std::string::npos) << r.out;
  // Same order from the same seed, whatever the thread count; the digest is printed for exactly this check.
  auto digest = [](const std::string& s) { return s.substr(s.find("order digest")); };
  auto r1 = run_facetex("data stream " + out + " --batch 3 --threads 1 --seed 9");
  auto r2 = run_facetex("data stream " + out + " --batch 3 --threads 2 --seed 9");
  EXPECT_EQ(digest(r1.out), digest(r2.out));
  // A damaged row: verify lists it and exits 3.
  test::write_bytes(fs::path(out) / "shard-00000.h5", test::read_bytes(fs::path(out) / "shard-00000.h5").substr(0, 4000));
  r = run_facetex("data verify " + out);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("shard-00000.h5"), std::string::npos) << r.err;
}

TEST(Cli, SyntheticWorldTrainAndMetricsEndToEnd) {
  TempDir tmp;
  const std::string w = (tmp / "world").string(), run = (tmp / "run").string();
  auto r = run_facetex("data synth --out " + w + " --count 24 --resolution 32 --texture-resolution 32 --shard-size 12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_facetex("data verify " + w + "/shards");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The same world again is kept; another one over it is refused (its shards would be rewritten under the training
  // data's feet), naming what differs.
  const auto shard_time = fs::last_write_time(fs::path(w) / "shards" / "shard-00000.h5");
  r = run_facetex("data synth --out " + w + " --count 24 --resolution 32 --texture-resolution 32 --shard-size 12");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already there (same settings; nothing written)"), std::string::npos) << r.out;
  r = run_facetex("data synth --out " + w + " --count 24 --resolution 32 --texture-resolution 32 --shard-size 12 --seed 9");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("seed: 0 then, 9 now); pass --overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(fs::last_write_time(fs::path(w) / "shards" / "shard-00000.h5"), shard_time);
  r = run_facetex("data synth --out " + w + " --count 8 --resolution 4294967312");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const std::string sets =
      " --set model.resolution=32 --set model.texture_resolution=32 --set model.z_dim=16 --set model.w_dim=16"
      " --set model.channel_base=128 --set model.channel_max=16 --set model.mbstd_group=2 --set train.batch=4"
      " --set run.kimg_per_tick=0.008 --set run.snap_ticks=2 --set run.grid_images=4";
  // The face model is the world's own (w/model.mat beside w/world.json), found from the shards.
  r = run_facetex("train --shards " + w + "/shards --run " + run + " --kimg 0.016" + sets);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("train: finished at kimg 0.016"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("(recorded in " + w + "/world.json)"), std::string::npos) << r.err;
  // Other network settings cannot resume this run: refused before anything is touched, naming the key.
  const std::string config_before = test::read_bytes(fs::path(run) / "config.toml");
  r = run_facetex("train --shards " + w + "/shards --run " + run + " --kimg 0.024" + sets +
                  " --set model.channel_base=256");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("other network settings (ckpt-000000000016.h5) — model.channel_base: 128 then, 256 now"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(test::read_bytes(fs::path(run) / "config.toml"), config_before);
  // A second launch resumes and, already done, continues to the new target; the changed settings are logged.
  r = run_facetex("train --shards " + w + "/shards --run " + run + " --kimg 0.024" + sets);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(resumed)"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("settings changed since"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run.total_kimg: 0.016 then, 0.024 now"), std::string::npos) << r.err;
  r = run_facetex("metrics synth --run " + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("synth_distance init="), std::string::npos) << r.out;
  // Usage errors name the key.
  r = run_facetex("train --shards " + w + "/shards --run " + run + " --set model.mode=video" + sets);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("model.mode"), std::string::npos) << r.err;
  // A micro-batch that D's minibatch-stddev groups cannot split: named before any network runs.
  r = run_facetex("train --shards " + w + "/shards --run " + run + "-3" + sets + " --set train.batch=5");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("model.mbstd_group 2 does not divide the micro-batch of 5 images"), std::string::npos) << r.err;
  r = run_facetex("train --shards " + (tmp / "missing").string() + " --run " + run + "-2" + sets);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // The run's log.txt ends with the line that ended the job, as stderr does.
  const std::string log = test::read_bytes(fs::path(run + "-2") / "log.txt");
  ASSERT_NE(r.err.rfind("facetex: data error:"), std::string::npos) << r.err;
  const std::string last = r.err.substr(r.err.rfind("facetex: data error:"));
  EXPECT_NE(last.find("missing"), std::string::npos) << last;
  ASSERT_GE(log.size(), last.size());
  EXPECT_EQ(log.substr(log.size() - last.size()), last) << log;
}
