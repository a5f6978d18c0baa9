// The streaming loader: deterministic order, disjoint and complete partitions for W = 1, 2, 3, exact
// continuation from a saved cursor (also with another W), batch contents, partial and dropped final steps.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/sampler.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::data;

namespace {

// One packed dataset of 23 generated 16x16 images shared by the tests in this file (23 is prime: no batch or
// world size divides it, so epoch boundaries fall inside steps).
class LoaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir();
    test::write_images(tmp_->path() / "in", kRows, 16, 16, ".png", 31);
    PackOptions o;
    o.images = (tmp_->path() / "in").string();
    o.out = tmp_->path() / "out";
    o.storage = Storage::kPng;
    o.shard_size = 5;
    o.threads = 2;
    pack_images(o);
    ds_ = Dataset::open(o.out);
  }
  static void TearDownTestSuite() {
    ds_.reset();
    delete tmp_;
  }

  struct Item {
    int64_t position, row;
    bool flip;
  };
  // All items rank `rank` receives in `steps` steps (or until the stream ends).
  static std::vector<Item> take(LoaderOptions o, int64_t steps, Cursor* after = nullptr,
                                std::vector<Batch>* batches = nullptr) {
    StreamingLoader loader(ds_, o);
    std::vector<Item> items;
    for (int64_t s = 0; s < steps; ++s) {
      auto b = loader.next();
      if (!b) break;
      for (int64_t j = 0; j < b->size; ++j) items.push_back({b->positions[j], b->rows[j], b->flipped[j] != 0});
      if (batches) batches->push_back(std::move(*b));
    }
    if (after) *after = loader.cursor();
    return items;
  }
  static LoaderOptions opts(int64_t batch, int64_t rank, int64_t world, uint64_t seed = 5) {
    LoaderOptions o;
    o.batch = batch;
    o.rank = rank;
    o.world = world;
    o.seed = seed;
    o.threads = 2;
    return o;
  }

  static constexpr int kRows = 23;
  static test::TempDir* tmp_;
  static std::shared_ptr<const Dataset> ds_;
};
test::TempDir* LoaderTest::tmp_ = nullptr;
std::shared_ptr<const Dataset> LoaderTest::ds_;

}  // namespace

TEST(Sampler, PermutationIsAPermutationAndDependsOnSeedAndEpoch) {
  auto p = epoch_permutation(1000, 42, 0);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, epoch_permutation(1000, 42, 0));
  EXPECT_NE(p, epoch_permutation(1000, 43, 0));
  EXPECT_NE(p, epoch_permutation(1000, 42, 1));
  // Pinned values (also produced by the independent Python implementation in tools/stream_order.py): the order is
  // part of the format (docs/formats.md), so a change here breaks reproducibility of every run.
  EXPECT_EQ(epoch_permutation(10, 0, 0), (std::vector<int64_t>{3, 8, 0, 6, 2, 9, 7, 1, 4, 5}));
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFull);  // SplitMix64 reference output for seed 0
  // below() is unbiased enough to cover its range evenly.
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) ++hist[rng.below(7)];
  for (int h : hist) EXPECT_NEAR(h, 10000, 500);
}

TEST(Sampler, AgreesWithTheIndependentPythonReference) {
  const char* src = std::getenv("FACETEX_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  for (auto [n, seed, epoch] : {std::tuple{1, 0, 0}, {2, 1, 0}, {97, 12345, 3}, {1000, 0xFFFFFFFFull, 17}}) {
    auto r = test::run_command(fmt::format("python3 {}/tools/stream_order.py --items {} --seed {} --epoch {}", src, n,
                                           seed, epoch));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<int64_t> py;
    std::stringstream ss(r.out);
    for (int64_t v; ss >> v;) py.push_back(v);
    EXPECT_EQ(py, epoch_permutation(n, seed, epoch)) << n << " " << seed << " " << epoch;
  }
}

TEST_F(LoaderTest, SameSeedSameOrderWhateverTheThreadCount) {
  auto o = opts(4, 0, 1);
  auto a = take(o, 20);
  o.threads = 1;
  auto b = take(o, 20);
  o.threads = 5;
  o.prefetch = 1;
  auto c = take(o, 20);
  ASSERT_EQ(a.size(), 80u);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].row, b[i].row);
    ASSERT_EQ(a[i].row, c[i].row);
  }
  auto d = take(opts(4, 0, 1, /*seed=*/6), 20);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i].row == d[i].row;
  EXPECT_LT(same, 20);
}

TEST_F(LoaderTest, RanksPartitionEachEpochDisjointlyAndCompletely) {
  for (bool xflip : {false, true}) {
    for (int64_t world : {1, 2, 3}) {
      SCOPED_TRACE(fmt::format("world {} xflip {}", world, xflip));
      const int64_t items = xflip ? 2 * kRows : kRows;
      std::map<std::pair<int64_t, bool>, int> seen;
      for (int64_t rank = 0; rank < world; ++rank) {
        auto o = opts(3, rank, world);
        o.xflip = xflip;
        o.limit = 2 * items;  // two epochs
        for (const auto& it : take(o, 1000)) {
          EXPECT_EQ(it.position % world, rank);
          ++seen[{it.row + (it.position >= items ? 1000 : 0), it.flip}];
        }
      }
      // Every (row, flip) exactly once in each of the two epochs.
      EXPECT_EQ(seen.size(), size_t(2 * items));
      for (const auto& [k, n] : seen) EXPECT_EQ(n, 1);
    }
  }
}

TEST_F(LoaderTest, StreamPositionsMatchTheDocumentedPermutation) {
  auto o = opts(4, 1, 3);
  for (const auto& it : take(o, 10)) {
    const Cursor c = Cursor::from_global(it.position, kRows);
    EXPECT_EQ(it.row, epoch_permutation(kRows, 5, c.epoch)[c.position]);
  }
}

TEST_F(LoaderTest, ResumeFromACursorContinuesExactlyAlsoWithAnotherWorldSize) {
  // Reference: the uninterrupted single-rank stream, position by position.
  std::map<int64_t, std::pair<int64_t, bool>> straight;
  {
    auto o = opts(1, 0, 1);
    o.xflip = true;
    for (const auto& it : take(o, 200)) straight[it.position] = {it.row, it.flip};
  }
  // Run with W = 2 for 5 steps (mid-epoch: 2*3*5 = 30 of 46 items), save the cursor, resume with W = 3 and W = 1.
  Cursor saved;
  std::set<int64_t> consumed;
  for (int64_t rank = 0; rank < 2; ++rank) {
    auto o = opts(3, rank, 2);
    o.xflip = true;
    Cursor c;
    for (const auto& it : take(o, 5, &c)) {
      EXPECT_EQ(straight.at(it.position), std::make_pair(it.row, it.flip));
      consumed.insert(it.position);
    }
    if (rank == 0) saved = c;
    EXPECT_EQ(c, saved) << "every rank reports the same cursor";
  }
  EXPECT_EQ(saved, (Cursor{0, 30}));
  EXPECT_EQ(consumed.size(), 30u);
  EXPECT_EQ(*consumed.rbegin(), 29);
  for (int64_t world : {3, 1}) {
    std::set<int64_t> next;
    for (int64_t rank = 0; rank < world; ++rank) {
      auto o = opts(3, rank, world);
      o.xflip = true;
      o.start = saved;
      for (const auto& it : take(o, 4)) {
        EXPECT_EQ(straight.at(it.position), std::make_pair(it.row, it.flip));
        next.insert(it.position);
      }
    }
    // Exactly the next 4*3*W positions: nothing repeated, nothing skipped, across the epoch boundary at 46.
    ASSERT_EQ(next.size(), size_t(12 * world));
    EXPECT_EQ(*next.begin(), 30);
    EXPECT_EQ(*next.rbegin(), 30 + 12 * world - 1);
  }
}

TEST_F(LoaderTest, BatchesHoldTheRowsPixelsInNchwMirroredWhenFlipped) {
  auto o = opts(5, 0, 1);
  o.xflip = true;
  std::vector<Batch> batches;
  take(o, 6, nullptr, &batches);
  std::string scratch;
  int flipped = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.height, 16);
    for (int64_t j = 0; j < b.size; ++j) {
      auto loc = ds_->locate(b.rows[j]);
      std::string bytes;
      loc.shard->read_row(loc.row, bytes);
      Image img = decode_image(bytes, "row");
      std::vector<uint8_t> want(b.image_bytes());
      hwc_to_chw(img.rgb.data(), 16, 16, b.flipped[j] != 0, want.data());
      ASSERT_EQ(0, std::memcmp(want.data(), b.data() + j * b.image_bytes(), want.size()));
      flipped += b.flipped[j];
      if (b.flipped[j]) {
        // Mirrored: pixel (y, x) of channel 0 is pixel (y, 15 - x) of the stored image.
        EXPECT_EQ(b.data()[j * b.image_bytes() + 3 * 16 + 2], img.rgb[(3 * 16 + 13) * 3]);
      }
    }
  }
  EXPECT_GT(flipped, 0);
}

TEST_F(LoaderTest, FiniteStreamsEndWithAPartialOrDroppedStep) {
  auto o = opts(4, 0, 2);
  o.limit = kRows;  // one epoch: 23 items, 8 per step
  std::vector<Batch> batches;
  Cursor after;
  take(o, 100, &after, &batches);
  ASSERT_EQ(batches.size(), 3u);  // positions 0..7, 8..15, 16..22: rank 0 gets 4, 4, 4 (16, 18, 20, 22)
  EXPECT_EQ(batches.back().size, 4);
  EXPECT_EQ(after, (Cursor{1, 0}));
  o.rank = 1;
  batches.clear();
  take(o, 100, nullptr, &batches);
  EXPECT_EQ(batches.back().size, 3);  // 17, 19, 21
  o.drop_last = true;
  batches.clear();
  take(o, 100, &after, &batches);
  EXPECT_EQ(batches.size(), 2u);
  EXPECT_EQ(after, (Cursor{0, 16}));
}

TEST_F(LoaderTest, EveryRankGetsTheSameNumberOfStepsEvenWhenTheLastIsEmpty) {
  // 23 items, W = 4, B = 3: 12 per step; the last step has positions 12..22 (11 items): rank 3 gets 2, and with
  // limit 13 the last step holds position 12 only, so ranks 1..3 get an empty batch rather than no batch.
  for (int64_t limit : {int64_t{kRows}, int64_t{13}}) {
    std::vector<size_t> steps;
    for (int64_t rank = 0; rank < 4; ++rank) {
      auto o = opts(3, rank, 4);
      o.limit = limit;
      std::vector<Batch> batches;
      take(o, 100, nullptr, &batches);
      steps.push_back(batches.size());
      if (limit == 13) {
        EXPECT_EQ(batches.back().size, rank == 0 ? 1 : 0);
      }
    }
    EXPECT_EQ(steps, std::vector<size_t>(4, 2));
  }
}

TEST_F(LoaderTest, InvalidOptionsAreUsageErrors) {
  EXPECT_THROW({ StreamingLoader l(ds_, opts(0, 0, 1)); }, UsageError);
  EXPECT_THROW({ StreamingLoader l(ds_, opts(2, 3, 3)); }, UsageError);
  auto o = opts(2, 0, 1);
  o.start = Cursor{0, kRows};
  EXPECT_THROW({ StreamingLoader l(ds_, o); }, UsageError);
}
