// core/: config precedence and errors, job partitioning, CRC-32, NumPy files, atomic files, HDF5 helpers, env params.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/crc32.h"
#include "core/env_param.h"
#include "core/error.h"
#include "core/fatal_signal.h"
#include "core/folder_lock.h"
#include "core/h5.h"
#include "core/log.h"
#include "core/npy.h"
#include "core/partition.h"
#include "core/work_pool.h"
#include "tests/support/fixtures.h"
#include "tests/support/shard_bytes.h"

namespace fs = std::filesystem;
using namespace facetex;

TEST(Config, ParsesTomlAndAppliesOverridesWithTypes) {
  Config c = Config::parse("[data]\nbatch = 32\nseed = 7\nname = \"ffhq\"\n[train]\nlr = 0.0025\n");
  EXPECT_EQ(c.get_int("data.batch", 0), 32);
  EXPECT_DOUBLE_EQ(c.get_double("train.lr", 0), 0.0025);
  c.set("data.batch=64");
  c.set("data.xflip=true");
  c.set("data.path=/scratch/ffhq shards");  // not TOML: taken as a string, no quotes needed
  c.set("new.section.value=1.5");
  EXPECT_EQ(c.get_int("data.batch", 0), 64);
  EXPECT_TRUE(c.get_bool("data.xflip", false));
  EXPECT_EQ(c.get_string("data.path", ""), "/scratch/ffhq shards");
  EXPECT_DOUBLE_EQ(c.get_double("new.section.value", 0), 1.5);
  EXPECT_DOUBLE_EQ(c.get_double("data.batch", 0), 64.0);  // integers read as numbers
  EXPECT_EQ(c.get_int("data.missing", -3), -3);
  EXPECT_EQ(c.keys(), (std::vector<std::string>{"data.batch", "data.name", "data.path", "data.seed", "data.xflip",
                                                 "new.section.value", "train.lr"}));
  // The resolved config round-trips through its TOML text.
  Config again = Config::parse(c.to_toml());
  EXPECT_EQ(again.get_string("data.path", ""), "/scratch/ffhq shards");
  EXPECT_EQ(again.get_int("data.batch", 0), 64);
}

TEST(Config, WrongTypesAndSyntaxErrorsAreUsageErrorsNamingTheKeyOrLine) {
  Config c = Config::parse("[data]\nbatch = \"many\"\n");
  try {
    c.get_int("data.batch");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("data.batch"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), ExitCode::kUsage);
  }
  try {
    Config::parse("a = 1\nb = [1, 2\n", "bad.toml");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.toml:"), std::string::npos) << e.what();
  }
  // A value the wrong type is quoted; integer text past 64 bits (kept as a string by --set) is named as such.
  c.set("run.seed=18446744073709551615");
  c.set("run.name=abc");
  for (const auto& [key, expected] : {std::pair<std::string, std::string>{"run.seed", "'18446744073709551615', an integer "
                                                                                      "outside the 64-bit range"},
                                      {"run.name", "string 'abc'"}}) {
    try {
      c.get_int(key);
      ADD_FAILURE() << key;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(c.set("novalue"), UsageError);
  EXPECT_THROW(c.set("data=3"), UsageError);  // data is a table
  EXPECT_THROW(Config::load("/nonexistent/config.toml"), UsageError);
}

TEST(Config, CommandLineTextReadAsAStringIsTheTextTyped) {
  // Paths and names that TOML reads as a date, a number, a boolean or a table are what the user typed.
  Config c;
  c.set_value("job.out", "2024-01-05");
  c.set_value("job.name", "123");
  c.set_value("job.seeds", "0x10");
  c.set_value("job.kwargs", "{}");
  c.set_value("job.flag", "true");
  c.set_value("job.batch", "16");
  Config merged;
  merged.merge(c);
  for (const Config* x : {&c, &merged}) {
    EXPECT_EQ(x->get_string("job.out"), "2024-01-05");
    EXPECT_EQ(x->get_string("job.seeds"), "0x10");
    EXPECT_EQ(x->get_string("job.kwargs"), "{}");
    EXPECT_EQ(x->get_string("job.flag"), "true");
    EXPECT_EQ(x->get_int("job.batch"), 16);  // a number where a number is read
  }
  EXPECT_EQ(c.get_int("job.name"), 123);
  EXPECT_EQ(c.get_string("job.name"), "123");
  // Read as a string, it is recorded as one.
  EXPECT_NE(c.to_toml().find("name = '123'"), std::string::npos) << c.to_toml();
  // A config file's TOML keeps its types.
  EXPECT_THROW(Config::parse("[job]\nout = 2024-01-05\n").get_string("job.out"), UsageError);
}

TEST(Config, ValueTextOfLeaves) {
  Config c = Config::parse("[a]\nx = 0.032\ny = 64\nz = \"p q\"\nb = true\nl = [1, 2]\n");
  EXPECT_EQ(c.value_text("a.x"), "0.032");  // shortest round trip
  EXPECT_EQ(c.value_text("a.y"), "64");
  EXPECT_NE(c.value_text("a.z").value_or("").find("p q"), std::string::npos);  // quoted ('p q' with toml++ 3)
  EXPECT_EQ(c.value_text("a.b"), "true");
  EXPECT_NE(c.value_text("a.l").value_or("").find('2'), std::string::npos);
  EXPECT_EQ(c.value_text("a"), std::nullopt);  // a table
  EXPECT_EQ(c.value_text("a.none"), std::nullopt);
}

TEST(Config, MergeOverridesRecursively) {
  Config base = Config::parse("[a]\nx = 1\ny = 2\n[b]\nz = 3\n");
  base.merge(Config::parse("[a]\ny = 20\n[c]\nw = 4\n"));
  EXPECT_EQ(base.get_int("a.x", 0), 1);
  EXPECT_EQ(base.get_int("a.y", 0), 20);
  EXPECT_EQ(base.get_int("b.z", 0), 3);
  EXPECT_EQ(base.get_int("c.w", 0), 4);
  // A value over a table (--set train=1 over a preset's [train]) would drop the table's settings; and the reverse.
  Config over_table;
  over_table.set("b=1");
  EXPECT_THROW(base.merge(over_table), UsageError);
  EXPECT_THROW(base.merge(Config::parse("[a.x]\nq = 1\n")), UsageError);
  EXPECT_EQ(base.get_int("b.z", 0), 3);
}

// A second holder of the same folder lock is refused, naming the folder and the job; the lock is free again once
// the first is gone, and locks of other names do not interfere (parts of one job in one folder).
TEST(FolderLock, SecondHolderIsRefusedUntilTheFirstEnds) {
  test::TempDir tmp;
  {
    FolderLock first(tmp.path(), "dataset.json", "facetex data pack (dataset.json)");
    try {
      FolderLock second(tmp.path(), "dataset.json", "facetex data pack (dataset.json)");
      ADD_FAILURE() << "expected a UsageError";
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(tmp.path().string() + ": another facetex data pack (dataset.json) is writing"),
                std::string::npos)
          << msg;
    }
    FolderLock other(tmp.path(), "dataset.part-00001-of-00002.json", "facetex data pack");
  }
  FolderLock again(tmp.path(), "dataset.json", "facetex data pack");
}

TEST(Config, NearestKeyNamesWhatATypoProbablyMeant) {
  const std::vector<std::string> known = {"train.lr_G", "train.lr_D", "pack.shard_size", "pack.storage"};
  EXPECT_EQ(nearest_key("train.lr_g", known), "train.lr_G");
  EXPECT_EQ(nearest_key("pack.shardsize", known), "pack.shard_size");
  EXPECT_EQ(nearest_key("pack.storag", known), "pack.storage");
  EXPECT_EQ(nearest_key("pack.threads", known), "");  // another word, not a typo
  EXPECT_EQ(unknown_keys_message({"pack.shardsize", "pack.x"}, known, "facetex data pack"),
            "unknown config keys pack.shardsize (did you mean pack.shard_size?), pack.x: facetex data pack does not "
            "read them");
}

TEST(Log, LevelsNameOnlyKnownSubsystems) {
  log::init(log::Options{0, false, "warn,data=debug,train=trace"});
  EXPECT_TRUE(log::get("data").should_log(spdlog::level::debug));
  EXPECT_FALSE(log::get("cli").should_log(spdlog::level::info));
  try {
    log::init(log::Options{0, false, "info,nosuchsys=debug"});
    ADD_FAILURE() << "an unknown subsystem was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown log subsystem 'nosuchsys'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reconstruct"), std::string::npos) << e.what();  // the list is given
  }
  EXPECT_THROW(log::get("nosuchsys"), RuntimeError);
  log::init(log::Options{});
  // Every line is in the log files at once (a tail -f sees a running job; a SIGKILL loses nothing logged).
  test::TempDir dir;
  log::add_file_sink((dir / "log.txt").string());
  log::get("train").info("tick 1 written");
  EXPECT_NE(test::read_bytes(dir / "log.txt").find("train info: tick 1 written"), std::string::npos);
}

TEST(Partition, ParsesAndSplitsEvenlyWithoutGapsOrOverlap) {
  Part p = parse_part("3/16");
  EXPECT_EQ(p.index, 3);
  EXPECT_EQ(p.count, 16);
  for (const char* bad : {"16/16", "-1/4", "1/0", "x/4", "1/", "1", "1/4/5", " 1/3", "+1/3", "1/3 ", "0x1/3"}) {
    EXPECT_THROW(parse_part(bad), UsageError) << bad;
  }
  for (int64_t total : {0, 1, 7, 100, 101}) {
    for (int64_t n : {1, 2, 3, 7, 16}) {
      int64_t expect = 0;
      for (int64_t i = 0; i < n; ++i) {
        Range r = part_range(total, Part{i, n});
        EXPECT_EQ(r.begin, expect);
        EXPECT_LE(r.size(), total / n + 1);
        EXPECT_GE(r.size(), total / n);
        expect = r.end;
      }
      EXPECT_EQ(expect, total);
    }
  }
}

TEST(Crc32, MatchesTheZlibCheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(crc32(s, 9), 0xCBF43926u);  // the standard CRC-32 check value (zlib.crc32(b"123456789"))
  EXPECT_EQ(crc32(s + 4, 5, crc32(s, 4)), 0xCBF43926u);  // incremental
  EXPECT_EQ(crc32(s, 0), 0u);
  EXPECT_EQ(crc32(nullptr, 0, 0xCBF43926u), 0xCBF43926u);  // nothing (an empty vector's data()) keeps the value
}

// What the writers make, read by NumPy itself (skipped without python3-numpy): shapes, values, and an .npz of two
// members — including the 1-d and 0-d shapes whose header tuples differ.
TEST(NumpyFiles, NpyAndNpzLoadWithNumpy) {
  if (test::run_command("/usr/bin/python3 -c 'import numpy'").exit_code != 0) GTEST_SKIP() << "no python3-numpy";
  test::TempDir dir;
  std::vector<float> v(2 * 3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i) - 3.0f;
  const float scalar = 7.5f;
  write_file_atomic(dir / "a.npy", npy_float32(v.data(), {2, 3, 5}));
  write_file_atomic(dir / "b.npz", npz_archive({{"w", npy_float32(v.data(), {30})}, {"s", npy_float32(&scalar, {})}}));
  write_file_atomic(dir / "empty.npy", npy_float32(v.data(), {0, 4}));
  const std::string script = fmt::format(
      "import numpy as np\n"
      "a = np.load('{0}/a.npy'); z = np.load('{0}/b.npz'); e = np.load('{0}/empty.npy')\n"
      "ref = (0.25 * np.arange(30) - 3).astype(np.float32)\n"
      "assert a.dtype == np.float32 and a.shape == (2, 3, 5) and (a.ravel() == ref).all(), a\n"
      "assert sorted(z.files) == ['s', 'w'] and z['w'].shape == (30,) and (z['w'] == ref).all()\n"
      "assert z['s'].shape == () and float(z['s']) == 7.5 and e.shape == (0, 4)\n"
      "print('numpy ok')\n",
      dir.path().string());
  test::write_bytes(dir / "check.py", script);
  const auto r = test::run_command("/usr/bin/python3 " + (dir / "check.py").string());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("numpy ok"), std::string::npos) << r.out << r.err;
  // The header is padded so that the data starts at a multiple of 64 bytes, as numpy writes it.
  const std::string a = npy_float32(v.data(), {2, 3, 5});
  EXPECT_EQ((a.size() - v.size() * sizeof(float)) % 64, 0u);
}

TEST(AtomicFile, CommitReplacesAtomicallyAndAbandonedWritesLeaveNoTrace) {
  test::TempDir dir;
  const fs::path target = dir / "result.json";
  write_file_atomic(target, "old");
  {
    AtomicFile f(target);
    test::write_bytes(f.temp_path(), "half-writ");
    EXPECT_EQ(test::read_bytes(target), "old");  // the final name is untouched while writing
    EXPECT_NE(f.temp_path().filename().string().find(std::string(kPartialMarker)), std::string::npos);
  }  // destroyed without commit
  EXPECT_EQ(test::read_bytes(target), "old");
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // the temporary file is gone
  write_file_atomic(target, "new");
  EXPECT_EQ(test::read_bytes(target), "new");
  EXPECT_THROW(read_file(dir / "missing"), DataError);
}

TEST(Hdf5, AttributesDatasetsAndStringsRoundTrip) {
  test::TempDir dir;
  const std::string path = (dir / "t.h5").string();
  {
    h5::Id f = h5::create_file(path);
    h5::write_attr(f, "name", "facetex");
    h5::write_attr(f, "count", int64_t{42});
    h5::write_attr(f, "ratio", 0.25);
    std::vector<float> v = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
    h5::write_dataset(f, "v", v.data(), {2, 3}, h5::Layout{{1, 3}, 4});
    h5::write_strings(f, "keys", {"a.png", "b/c.jpg", ""});
  }
  h5::Id f = h5::open_file(path);
  EXPECT_EQ(h5::read_attr_string(f, "name"), "facetex");
  EXPECT_EQ(h5::read_attr_int(f, "count"), 42);
  EXPECT_DOUBLE_EQ(h5::read_attr_double(f, "ratio"), 0.25);
  std::vector<hsize_t> dims;
  auto v = h5::read_dataset<float>(f, "v", &dims);
  EXPECT_EQ(dims, (std::vector<hsize_t>{2, 3}));
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f}));
  EXPECT_EQ(h5::read_strings(f, "keys"), (std::vector<std::string>{"a.png", "b/c.jpg", ""}));
  EXPECT_THROW(h5::open_dataset(f, "nope"), DataError);
  EXPECT_THROW(h5::read_attr_int(f, "missing"), DataError);
  EXPECT_THROW(h5::read_attr_int(f, "name"), DataError);  // a string is not a number
}

TEST(Hdf5, AFlippedByteInAChecksummedDatasetIsNamed) {
  test::TempDir dir;
  const std::filesystem::path path = dir / "c.h5";
  {
    h5::Id f = h5::create_file(path.string());
    h5::Id g = h5::create_group(f, "g");
    std::vector<float> w(64);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f * float(i);
    h5::write_dataset(g, "w", w.data(), {8, 8});
    std::vector<double> x = {1.0, 2.0};
    h5::write_dataset(f, "x", x.data(), {2});
  }
  {
    h5::Id f = h5::open_file(path.string());
    EXPECT_TRUE(h5::checksum_mismatches(f).empty());
    EXPECT_EQ(h5::read_dataset<float>(f, "g/w").at(3), 1.5f);
  }
  test::flip_byte(path, test::contiguous_file_offset(path, "g/w") + 13);
  h5::Id f = h5::open_file(path.string());
  EXPECT_EQ(h5::checksum_mismatches(f), (std::vector<std::string>{"/g/w"}));
  try {
    h5::read_dataset<float>(f, "g/w");
    ADD_FAILURE() << "damaged values were read";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/g/w: the stored values do not match their CRC-32"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(h5::read_dataset<double>(f, "x"), (std::vector<double>{1.0, 2.0}));
}

TEST(Hdf5, OpeningGarbageOrMissingFilesNamesTheFile) {
  test::TempDir dir;
  test::write_bytes(dir / "junk.h5", std::string(4096, 'x'));
  try {
    h5::open_file((dir / "junk.h5").string());
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.h5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(h5::open_file((dir / "none.h5").string()), DataError);
}

TEST(EnvParam, ReadsCachesAndRejectsMalformedValues) {
  setenv("FACETEX_TEST_INT", "12", 1);
  EXPECT_EQ(env_int("FACETEX_TEST_INT", 3), 12);
  unsetenv("FACETEX_TEST_INT");
  EXPECT_EQ(env_int("FACETEX_TEST_INT", 3), 3);
  setenv("FACETEX_TEST_INT", "12abc", 1);
  EXPECT_THROW(env_int("FACETEX_TEST_INT", 3), UsageError);
  setenv("FACETEX_TEST_DOUBLE", "0.5", 1);
  EXPECT_DOUBLE_EQ(env_double("FACETEX_TEST_DOUBLE", 1), 0.5);
}

// A crash no error path catches names the program, host, pid and rank, prints a backtrace, and still dies of the
// same signal (Slurm and the shell see 128 + signal, core dumps still happen).
TEST(FatalSignal, ACrashIsReportedWithItsRankAndDiesOfTheSameSignal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto crash = [](int sig) {
    facetex::install_fatal_signal_report("test_core");
    facetex::set_fatal_signal_rank(3);
    ::raise(sig);
  };
  EXPECT_EXIT(crash(SIGSEGV), testing::KilledBySignal(SIGSEGV),
              "test_core: fatal SIGSEGV \\(11\\) on host .*, pid [0-9]+, rank 3, thread [0-9]+ \\(main\\)\n"
              "  fault address .*, pc 0x[0-9a-f]+ in mapping: .*backtrace.*\n.*test_core");
  EXPECT_EXIT(crash(SIGABRT), testing::KilledBySignal(SIGABRT), "fatal SIGABRT \\(6\\).* rank 3");
}

TEST(WorkPool, EveryIndexOnceOnDistinctWorkersAndTheFirstErrorStopsTheRest) {
  for (int workers : {1, 3, 8}) {
    std::vector<std::atomic<int>> seen(50);
    std::vector<std::set<std::thread::id>> threads_of(8);
    std::mutex mu;
    for_each_index(50, workers, [&](int64_t i, int w) {
      ASSERT_GE(w, 0);
      ASSERT_LT(w, workers);
      ++seen[static_cast<size_t>(i)];
      std::lock_guard<std::mutex> lock(mu);
      threads_of[static_cast<size_t>(w)].insert(std::this_thread::get_id());
    });
    for (const auto& s : seen) EXPECT_EQ(s.load(), 1) << workers << " workers";
    for (const auto& ids : threads_of) EXPECT_LE(ids.size(), 1u) << "a worker index is one thread";
  }
  // More workers than items: only as many threads as items.
  std::atomic<int> max_worker{-1};
  for_each_index(2, 16, [&](int64_t, int w) {
    int m = max_worker.load();
    while (w > m && !max_worker.compare_exchange_weak(m, w)) {
    }
  });
  EXPECT_LE(max_worker.load(), 1);
  // An escaping exception is rethrown after the workers return; items not yet claimed are not run.
  std::atomic<int> ran{0};
  EXPECT_THROW(for_each_index(1000, 4,
                              [&](int64_t i, int) {
                                ++ran;
                                if (i == 3) throw std::runtime_error("item 3");
                                std::this_thread::sleep_for(std::chrono::microseconds(200));
                              }),
               std::runtime_error);
  EXPECT_LT(ran.load(), 1000);
  for_each_index(0, 4, [](int64_t, int) { FAIL() << "no items, no calls"; });
  EXPECT_GE(hardware_workers(), 1);
}
