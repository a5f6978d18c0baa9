// Damaged shards and manifests: a flipped byte inside a chunk, a truncated shard, a manifest that disagrees with
// its shards, a file that is not a shard. Each is named (file, row, key) by verify, by Dataset::open and by the
// loader; --on-corrupt=skip leaves the damage out, counted.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/h5.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/shard_reader.h"
#include "data/shard_writer.h"
#include "data/verify.h"
#include "tests/support/fixtures.h"
#include "tests/support/shard_bytes.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::data;

namespace {

fs::path pack(const test::TempDir& tmp, Storage storage, int deflate = 0) {
  const fs::path in = tmp / "in", out = tmp / ("out-" + storage_name(storage) + std::to_string(deflate));
  if (!fs::exists(in)) test::write_images(in, 6, 32, 32, ".png", 21);
  PackOptions o;
  o.images = in.string();
  o.out = out;
  o.storage = storage;
  o.deflate = deflate;
  o.shard_size = 3;
  o.threads = 1;
  pack_images(o);
  return out;
}


std::vector<int64_t> stream_rows(const std::shared_ptr<const Dataset>& ds, OnCorrupt policy, LoaderStats* stats) {
  LoaderOptions o;
  o.batch = 2;
  o.threads = 2;
  o.on_corrupt = policy;
  o.limit = ds->size();
  StreamingLoader loader(ds, o);
  std::vector<int64_t> rows;
  while (auto b = loader.next()) rows.insert(rows.end(), b->rows.begin(), b->rows.end());
  if (stats) *stats = loader.stats();
  return rows;
}

}  // namespace

class FlippedByte : public ::testing::TestWithParam<std::pair<Storage, int>> {};

TEST_P(FlippedByte, IsNamedByVerifyAndTheLoaderAndSkippedOnRequest) {
  test::TempDir tmp;
  const auto [storage, deflate] = GetParam();
  const fs::path out = pack(tmp, storage, deflate);
  const fs::path shard = out / "shard-00001.h5";  // rows 3..5 of the dataset; damage its row 1 = img_004.png
  test::flip_byte(shard, test::row_file_offset(shard, 1));

  VerifyReport v = verify_dataset(VerifyOptions{out, true, 2});
  ASSERT_EQ(v.bad_rows, 1);
  ASSERT_EQ(v.problems.size(), 1u);
  const std::string& msg = v.problems[0];
  EXPECT_NE(msg.find("shard-00001.h5 row 1 (key 'img_004.png')"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("crc32 mismatch") != std::string::npos || msg.find("corrupt compressed chunk") != std::string::npos)
      << msg;

  // The manifest digest covers stored CRCs, not pixels, so the dataset still opens; the loader finds the row.
  auto ds = Dataset::open(out, OnCorrupt::kFail);
  {
    LoaderOptions o;
    o.batch = 2;
    o.threads = 2;
    o.limit = ds->size();
    StreamingLoader loader(ds, o);
    std::string first;
    try {
      while (loader.next()) {
      }
      FAIL() << "expected a DataError";
    } catch (const DataError& e) {
      first = e.what();
      EXPECT_NE(first.find("shard-00001.h5 row 1 (key 'img_004.png')"), std::string::npos) << first;
    }
    // A failed loader keeps reporting its error (it never hangs waiting for stopped workers).
    try {
      loader.next();
      FAIL() << "expected the same DataError again";
    } catch (const DataError& e) {
      EXPECT_EQ(first, e.what());
    }
  }
  LoaderStats stats;
  auto rows = stream_rows(ds, OnCorrupt::kSkip, &stats);
  EXPECT_EQ(rows.size(), 6u);  // batches keep their size
  EXPECT_EQ(std::count(rows.begin(), rows.end(), 4), 0);  // the damaged row never comes out
  EXPECT_EQ(stats.corrupt_skips, 1);
}

INSTANTIATE_TEST_SUITE_P(Storages, FlippedByte,
                         ::testing::Values(std::pair{Storage::kRaw, 0}, std::pair{Storage::kRaw, 5},
                                           std::pair{Storage::kPng, 0}));

TEST(DamagedShard, TruncatedShardIsNamedAndCanBeLeftOut) {
  test::TempDir tmp;
  const fs::path out = pack(tmp, Storage::kRaw);
  const fs::path shard = out / "shard-00000.h5";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  try {
    Dataset::open(out, OnCorrupt::kFail);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("shard-00000.h5"), std::string::npos) << e.what();
  }
  auto ds = Dataset::open(out, OnCorrupt::kSkip);
  EXPECT_EQ(ds->size(), 3);
  ASSERT_EQ(ds->excluded().size(), 1u);
  EXPECT_NE(ds->excluded()[0].find("shard-00000.h5"), std::string::npos);
  VerifyReport v = verify_dataset(VerifyOptions{out, true, 1});
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.problems[0].find("shard-00000.h5"), std::string::npos) << v.problems[0];
}

// The row keys (input file names, which messages and outputs are named after) carry a CRC-32 too.
TEST(DamagedShard, FlippedKeyIsNamedByVerify) {
  test::TempDir tmp;
  const fs::path out = pack(tmp, Storage::kPng);
  const fs::path shard = out / "shard-00001.h5";
  const std::string bytes = test::read_bytes(shard);
  const size_t at = bytes.find("img_004.png");
  ASSERT_NE(at, std::string::npos);
  test::flip_byte(shard, at + 5);
  VerifyReport v = verify_dataset(VerifyOptions{out, true, 1});
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_EQ(v.bad_rows, 0);  // the pixels are intact
  EXPECT_NE(v.problems[0].find("shard-00001.h5: /keys: the stored strings do not match their CRC-32"),
            std::string::npos)
      << v.problems[0];
}

// Annotations (what `data annotate` and `data synth` add: coefficients, crops, ground-truth textures) carry a CRC-32
// of all their values; verify compares it, so a flipped bit in a face's geometry is found like one in its pixels.
TEST(DamagedShard, FlippedAnnotationValueIsNamedByVerify) {
  test::TempDir tmp;
  const fs::path out = pack(tmp, Storage::kRaw);
  const fs::path shard = out / "shard-00000.h5";
  {  // shard 0 again with the same rows plus two annotations, as annotate writes it
    ShardReader in(shard);
    ShardWriter writer(tmp / "annotated.h5", in.header(), 0);
    std::string bytes;
    for (int64_t r = 0; r < in.count(); ++r) {
      in.read_row(r, bytes);
      writer.append(in.key(r), bytes, in.stored_crc(r));
    }
    std::vector<float> coeffs;
    for (int64_t i = 0; i < in.count() * 40; ++i) coeffs.push_back(0.25f * float(i) - 3.0f);
    writer.set_annotation("coeffs", std::move(coeffs), {hsize_t(in.count()), 40});
    writer.set_annotation("valid", std::vector<uint8_t>(size_t(in.count()), 1), {hsize_t(in.count())});
    writer.commit();
  }
  fs::rename(tmp / "annotated.h5", shard);
  auto manifest = nlohmann::json::parse(test::read_bytes(out / "dataset.json"));
  manifest["shards"][0]["bytes"] = int64_t(fs::file_size(shard));
  test::write_bytes(out / "dataset.json", manifest.dump(2));
  EXPECT_EQ(ShardReader(shard).annotation_names(), (std::vector<std::string>{"coeffs", "valid"}));

  VerifyReport v = verify_dataset(VerifyOptions{out, true, 2});
  EXPECT_TRUE(v.ok()) << v.problems.front();
  EXPECT_EQ(v.annotations_checked, 2);
  EXPECT_TRUE(v.notes.empty()) << v.notes.front();

  // One value of row 1's coefficients, changed in the file: the pixels still verify, the annotation does not.
  test::flip_byte(shard, test::chunk_file_offset(shard, "coeffs", {1, 0}) + 17);
  v = verify_dataset(VerifyOptions{out, true, 2});
  EXPECT_EQ(v.bad_rows, 0);
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_NE(v.problems[0].find("shard-00000.h5: /coeffs: the stored values do not match the CRC-32"), std::string::npos)
      << v.problems[0];
  // A job that renders from the geometry (training, reconstruct --landmarks annotations) checks it before starting.
  {
    auto ds = Dataset::open(out, OnCorrupt::kFail);
    try {
      require_intact_annotations(*ds, {"coeffs", "crop"});
      ADD_FAILURE() << "expected a DataError";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("shard-00000.h5: /coeffs: the stored values do not match"),
                std::string::npos)
          << e.what();
    }
    EXPECT_NO_THROW(require_intact_annotations(*ds, {"valid", "crop"}));  // intact, and absent
  }

  // A shard written before annotations had checksums: a note, not a problem.
  {
    h5::Id f = h5::open_file(shard.string(), true);
    h5::Id d = h5::open_dataset(f, "valid");
    ASSERT_GE(H5Adelete(d, kAnnotationCrc32Attr), 0);
  }
  manifest["shards"][0]["bytes"] = int64_t(fs::file_size(shard));
  test::write_bytes(out / "dataset.json", manifest.dump(2));
  v = verify_dataset(VerifyOptions{out, true, 2});
  ASSERT_EQ(v.notes.size(), 1u);
  EXPECT_NE(v.notes[0].find("1 annotation datasets have no checksum"), std::string::npos) << v.notes[0];
  EXPECT_NE(v.notes[0].find("shard-00000.h5 /valid"), std::string::npos) << v.notes[0];
  EXPECT_EQ(v.annotations_checked, 1);
  EXPECT_EQ(v.problems.size(), 1u);  // the flipped coefficient is still there
}

TEST(DamagedShard, ManifestThatDisagreesWithItsShardsIsNamed) {
  test::TempDir tmp;
  const fs::path out = pack(tmp, Storage::kPng);
  const fs::path manifest = out / "dataset.json";
  const std::string original = test::read_bytes(manifest);
  auto edit = [&](const std::function<void(nlohmann::json&)>& change) {
    auto j = nlohmann::json::parse(original);
    change(j);
    test::write_bytes(manifest, j.dump(2));
  };
  struct Case {
    std::function<void(nlohmann::json&)> change;
    std::string expect;
  };
  std::vector<Case> cases = {
      {[](nlohmann::json& j) { j["shards"][1]["bytes"] = 123; }, "shard-00001.h5: disagrees with dataset.json: manifest says 123 bytes"},
      {[](nlohmann::json& j) { j["shards"][0]["rows_crc32"] = "0x00000001"; }, "shard-00000.h5: disagrees with dataset.json: content digest"},
      {[](nlohmann::json& j) { j["shards"][1]["file"] = "shard-00007.h5"; }, "shard-00007.h5: no such file"},
      {[](nlohmann::json& j) { j["resolution"] = 64; }, "manifest says resolution 64"},
      {[](nlohmann::json& j) { j["count"] = 7; }, "shards hold 6 rows but count is 7"},
      {[](nlohmann::json& j) { j.erase("storage"); }, "missing field 'storage'"},
      {[](nlohmann::json& j) { j["shards"][0]["rows_crc32"] = "zz"; }, "rows_crc32 'zz' is not a hex number"},
      {[](nlohmann::json& j) { j["shards"][0]["count"] = "three"; }, "field 'count' must be an integer"},
      {[](nlohmann::json& j) { j["skipped"] = {{{"input", "x"}}}; }, "(skipped[0]): field 'input' must be an integer"},
      // Lies that read as a dataset: a count that is not whole, a channel count no shard has, a shard listed twice,
      // one left out (its inputs would vanish unnoticed), a range outside the inputs.
      {[](nlohmann::json& j) { j["shards"][0]["count"] = 3.5; }, "field 'count' must be an integer, got 3.5"},
      {[](nlohmann::json& j) { j["channels"] = 4; }, "channels 4"},
      {[](nlohmann::json& j) { j["shards"][1] = j["shards"][0]; j["count"] = 2 * j["shards"][0]["count"].get<int>(); },
       "is listed twice"},
      {[](nlohmann::json& j) { j["count"] = j["shards"][0]["count"]; j["shards"].erase(1); },
       "the shards cover inputs [0, 3) but total_inputs is 6"},
      {[](nlohmann::json& j) { j["total_inputs"] = 3; }, "outside [0, total_inputs 3)"},
  };
  for (const auto& c : cases) {
    edit(c.change);
    try {
      Dataset::open(out, OnCorrupt::kFail);
      ADD_FAILURE() << "expected DataError containing: " << c.expect;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
  test::write_bytes(manifest, "{ not json");
  EXPECT_THROW(Dataset::open(out), DataError);
  test::write_bytes(manifest, original);
  EXPECT_EQ(Dataset::open(out)->size(), 6);
}

TEST(DamagedShard, FilesThatAreNotShardsAreRejectedByName) {
  test::TempDir tmp;
  {
    h5::Id f = h5::create_file((tmp / "other.h5").string());
    h5::write_attr(f, "format", "something-else");
  }
  try {
    ShardReader r(tmp / "other.h5");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("other.h5: not a facetex shard"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Dataset::open(tmp.path()), DataError);  // no dataset.json
}
