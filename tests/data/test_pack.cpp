// data pack: pixel-exact round trips (generated images and the real dlib photos), --part + merge-manifest,
// idempotent re-runs, and every kind of bad input named with its file, the data-error exit code and no damage.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/image_source.h"
#include "data/manifest.h"
#include "data/pack.h"
#include "data/verify.h"
#include "tests/support/fixtures.h"

namespace fs = std::filesystem;
using namespace facetex;
using namespace facetex::data;

namespace {

PackOptions options(const fs::path& images, const fs::path& out, Storage storage, int64_t shard_size = 4,
                    int resolution = 0) {
  PackOptions o;
  o.images = images.string();
  o.out = out;
  o.storage = storage;
  o.shard_size = shard_size;
  o.resolution = resolution;
  o.threads = 2;
  return o;
}

// Planar RGB of what a packed row must hold: the decoded input after the documented squaring/resizing.
std::vector<uint8_t> expected_chw(const std::string& bytes, const FitOptions& fit) {
  Image img = decode_image(bytes, "expected");
  Image fitted = fit_square(img, fit, "expected");
  std::vector<uint8_t> chw(fitted.rgb.size());
  hwc_to_chw(fitted.rgb.data(), fitted.height, fitted.width, false, chw.data());
  return chw;
}

// Reads every row of the dataset and compares it with the source file of the same key.
void expect_round_trip(const fs::path& out, const std::string& images_root, const FitOptions& fit) {
  auto ds = Dataset::open(out);
  auto src = open_image_source(images_root);
  ASSERT_EQ(ds->size(), src->size());
  std::string scratch;
  for (int64_t i = 0; i < ds->size(); ++i) {
    auto loc = ds->locate(i);
    ASSERT_EQ(loc.shard->key(loc.row), src->key(i));
    std::vector<uint8_t> got(size_t(3) * fit.resolution * fit.resolution);
    loc.shard->read_chw(loc.row, false, got.data(), scratch);
    auto want = expected_chw(src->read(i), fit);
    ASSERT_EQ(got, want) << "row " << i << " (" << src->key(i) << ") differs";
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG EXCEPTION TYPE: ") + e.what();
  }
  return "NO ERROR";
}

}  // namespace

TEST(Pack, RawPngAndDeflateStoragesArePixelExactOnGeneratedImages) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 10, 48, 48, ".png", 3);
  for (auto [storage, deflate] : {std::pair{Storage::kRaw, 0}, {Storage::kRaw, 6}, {Storage::kPng, 0}}) {
    const fs::path out = tmp / fmt::format("out-{}-{}", storage_name(storage), deflate);
    auto o = options(tmp / "in", out, storage);
    o.deflate = deflate;
    auto r = pack_images(o);
    EXPECT_EQ(r.manifest.count, 10);
    EXPECT_EQ(r.manifest.shards.size(), 3u);  // 4 + 4 + 2
    EXPECT_EQ(r.manifest.resolution, 48);
    expect_round_trip(out, (tmp / "in").string(), FitOptions{48, SquarePolicy::kNone, false});
    VerifyReport v = verify_dataset(VerifyOptions{out, true, 2});
    EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems[0]);
    EXPECT_EQ(v.rows_checked, 10);
  }
}

TEST(Pack, ResizesAndCropsWithTheDocumentedFilter) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 3, 90, 60, ".jpg", 5);  // non-square JPEGs
  auto o = options(tmp / "in", tmp / "out", Storage::kRaw, 8, 32);
  o.square = SquarePolicy::kCenterCrop;
  pack_images(o);
  expect_round_trip(tmp / "out", (tmp / "in").string(), FitOptions{32, SquarePolicy::kCenterCrop, false});
}

TEST(Pack, RealDlibPhotosRoundTripPixelExactInRawAndPng) {
  FACETEX_REQUIRE_ASSETS();
  test::TempDir tmp;
  const fs::path faces = test::assets_dir() / "dlib" / "faces";
  for (Storage storage : {Storage::kRaw, Storage::kPng}) {
    const fs::path out = tmp / storage_name(storage);
    auto o = options(faces, out, storage, 5, 160);
    o.square = SquarePolicy::kCenterCrop;
    auto r = pack_images(o);
    EXPECT_GE(r.manifest.count, 12);
    expect_round_trip(out, faces.string(), FitOptions{160, SquarePolicy::kCenterCrop, false});
  }
  // The johns chips are 150x150 JPEGs: with jpeg storage at their own size they are stored byte for byte.
  const fs::path johns = test::assets_dir() / "dlib" / "johns";
  auto o = options(johns, tmp / "johns", Storage::kJpeg, 20);
  auto r = pack_images(o);
  EXPECT_EQ(r.manifest.count, 55);
  EXPECT_EQ(r.manifest.resolution, 150);
  auto ds = Dataset::open(tmp / "johns");
  auto src = open_image_source(johns.string());
  std::string row;
  for (int64_t i = 0; i < ds->size(); ++i) {
    auto loc = ds->locate(i);
    loc.shard->read_row(loc.row, row);
    ASSERT_EQ(row, src->read(i)) << src->key(i);
  }
  expect_round_trip(tmp / "johns", johns.string(), FitOptions{150, SquarePolicy::kNone, false});
}

TEST(Pack, PartsWrittenIndependentlyMergeIntoTheSameDatasetAsOneRun) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 11, 32, 32, ".png", 9);
  auto whole = pack_images(options(tmp / "in", tmp / "whole", Storage::kPng, 3));
  for (int i : {2, 0, 1}) {  // any order, like array tasks
    auto o = options(tmp / "in", tmp / "parts", Storage::kPng, 3);
    o.part = Part{i, 3};
    auto r = pack_images(o);
    EXPECT_EQ(r.manifest_path.filename().string(), part_manifest_name(Part{i, 3}));
  }
  EXPECT_FALSE(fs::exists(tmp / "parts" / "dataset.json"));
  Manifest merged = merge_part_manifests(tmp / "parts");
  EXPECT_EQ(merged.count, 11);
  ASSERT_EQ(merged.shards.size(), whole.manifest.shards.size());
  for (size_t i = 0; i < merged.shards.size(); ++i) {
    EXPECT_EQ(merged.shards[i].file, whole.manifest.shards[i].file);
    EXPECT_EQ(merged.shards[i].count, whole.manifest.shards[i].count);
    EXPECT_EQ(merged.shards[i].rows_crc32, whole.manifest.shards[i].rows_crc32);
  }
  expect_round_trip(tmp / "parts", (tmp / "in").string(), FitOptions{32, SquarePolicy::kNone, false});

  // A second file for a part under another spelling is refused, not merged in place of the real one.
  fs::copy_file(tmp / "parts" / part_manifest_name(Part{1, 3}), tmp / "parts" / "dataset.part-1-of-3.json");
  std::string err = error_of([&] { merge_part_manifests(tmp / "parts"); });
  EXPECT_NE(err.find("dataset.part-1-of-3.json: a manifest of part 1/3 that its task did not write"),
            std::string::npos)
      << err;
  fs::remove(tmp / "parts" / "dataset.part-1-of-3.json");
  // A shard gone since its part finished is named by the merge, not by the first reader of dataset.json.
  fs::rename(tmp / "parts" / "shard-00002.h5", tmp / "shard-00002.h5");
  err = error_of([&] { merge_part_manifests(tmp / "parts"); });
  EXPECT_NE(err.find("shard-00002.h5: listed by a part manifest but missing"), std::string::npos) << err;
  fs::rename(tmp / "shard-00002.h5", tmp / "parts" / "shard-00002.h5");
  // A whole pack into the folder replaces the split: its part manifests go, so no later merge can restore them.
  {
    auto o = options(tmp / "in", tmp / "parts", Storage::kPng, 3);
    pack_images(o);
    EXPECT_FALSE(fs::exists(tmp / "parts" / part_manifest_name(Part{0, 3})));
    err = error_of([&] { merge_part_manifests(tmp / "parts"); });
    EXPECT_NE(err.find("no dataset.part-*-of-*.json manifests to merge"), std::string::npos) << err;
    // Part manifests come back only from part runs; remake them for the checks below.
    for (int i : {0, 1, 2}) {
      auto p = options(tmp / "in", tmp / "parts", Storage::kPng, 3);
      p.part = Part{i, 3};
      pack_images(p);
    }
  }

  // A part manifest whose 'part' field was lost is named as such (not by its input range).
  {
    const fs::path f = tmp / "parts" / part_manifest_name(Part{2, 3});
    auto j = nlohmann::json::parse(test::read_bytes(f));
    j.erase("part");
    const std::string kept = test::read_bytes(f);
    test::write_bytes(f, j.dump());
    err = error_of([&] { merge_part_manifests(tmp / "parts"); });
    EXPECT_NE(err.find(f.string() + ": part manifest without a 'part' field"), std::string::npos) << err;
    test::write_bytes(f, kept);
  }

  // A missing part is named.
  fs::remove(tmp / "parts" / part_manifest_name(Part{1, 3}));
  fs::remove(tmp / "parts" / "dataset.json");
  err = error_of([&] { merge_part_manifests(tmp / "parts"); });
  EXPECT_NE(err.find("part 1/3 is missing"), std::string::npos) << err;
}

TEST(Pack, ReRunKeepsFinishedShardsAndRedoesOnlyMissingOnes) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 9, 32, 32, ".png", 4);
  auto first = pack_images(options(tmp / "in", tmp / "out", Storage::kRaw, 3));
  EXPECT_EQ(first.shards_written, 3);
  const auto mtime = fs::last_write_time(tmp / "out" / "shard-00000.h5");
  fs::remove(tmp / "out" / "shard-00001.h5");
  test::write_bytes(tmp / "out" / "shard-00002.h5.partial-host-1-0", "leftover of a crash");
  auto second = pack_images(options(tmp / "in", tmp / "out", Storage::kRaw, 3));
  EXPECT_EQ(second.shards_written, 1);
  EXPECT_EQ(second.shards_reused, 2);
  EXPECT_EQ(fs::last_write_time(tmp / "out" / "shard-00000.h5"), mtime);
  EXPECT_TRUE(verify_dataset(VerifyOptions{tmp / "out", true, 2}).ok());
  // Different settings give different shards: a finished dataset is only replaced when asked to.
  EXPECT_THROW(pack_images(options(tmp / "in", tmp / "out", Storage::kPng, 3)), UsageError);
  EXPECT_EQ(Dataset::open(tmp / "out")->storage(), Storage::kRaw);
  auto o = options(tmp / "in", tmp / "out", Storage::kPng, 3);
  o.overwrite = true;
  auto third = pack_images(o);
  EXPECT_EQ(third.shards_written, 3);
  EXPECT_EQ(Dataset::open(tmp / "out")->storage(), Storage::kPng);

  // Fewer inputs: the first shards are unchanged, but shard 2 of the finished dataset has no place in the new one.
  // That is a rewrite of a finished dataset (refused without --overwrite), and the stale shard is removed.
  for (int i : {6, 7, 8}) fs::remove(tmp / "in" / fmt::format("img_{:03d}.png", i));
  EXPECT_THROW(pack_images(options(tmp / "in", tmp / "out", Storage::kPng, 3)), UsageError);
  EXPECT_TRUE(fs::exists(tmp / "out" / "shard-00002.h5"));
  EXPECT_EQ(Dataset::open(tmp / "out")->size(), 9);
  o.overwrite = true;
  auto fourth = pack_images(o);
  EXPECT_EQ(fourth.shards_reused, 2);
  EXPECT_EQ(fourth.shards_written, 0);
  EXPECT_FALSE(fs::exists(tmp / "out" / "shard-00002.h5"));
  const VerifyReport report = verify_dataset(VerifyOptions{tmp / "out", true, 2});
  EXPECT_TRUE(report.ok());
  EXPECT_TRUE(report.notes.empty()) << report.notes.front();
  // A shard past the end that no manifest lists (a run stopped between its manifest and the removal): removed
  // without asking, since no finished dataset changes.
  fs::copy_file(tmp / "out" / "shard-00001.h5", tmp / "out" / "shard-00005.h5");
  o.overwrite = false;
  auto fifth = pack_images(o);
  EXPECT_EQ(fifth.shards_reused, 2);
  EXPECT_FALSE(fs::exists(tmp / "out" / "shard-00005.h5"));
}

TEST(PackBadInput, EmptyOrMissingFolderIsADataError) {
  test::TempDir tmp;
  fs::create_directories(tmp / "empty");
  test::write_bytes(tmp / "empty" / "notes.txt", "no images here");
  std::string err = error_of([&] { pack_images(options(tmp / "empty", tmp / "out", Storage::kPng)); });
  EXPECT_NE(err.find("no PNG/JPEG images found"), std::string::npos) << err;
  EXPECT_NE(err.find((tmp / "empty").string()), std::string::npos) << err;
  err = error_of([&] { pack_images(options(tmp / "nope", tmp / "out", Storage::kPng)); });
  EXPECT_NE(err.find("no such file or folder"), std::string::npos) << err;
}

TEST(PackBadInput, CorruptTruncatedNonImageNonSquareTinyAndMixedInputsAreNamed) {
  test::TempDir tmp;
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> make;  // writes the bad file into the folder
    std::string expect;
    int resolution;
  };
  const std::string good_jpeg = encode_jpeg(test::make_image(40, 40, 1), 90);
  const std::string good_png = encode_png(test::make_image(40, 40, 2));
  std::vector<Case> cases = {
      {"garbage.png", [](const fs::path& p) { test::write_bytes(p, "this is not an image at all"); },
       "not a PNG or JPEG file", 0},
      {"truncated.jpg", [&](const fs::path& p) { test::write_bytes(p, good_jpeg.substr(0, good_jpeg.size() / 2)); },
       "truncated JPEG", 0},
      {"truncated.png", [&](const fs::path& p) { test::write_bytes(p, good_png.substr(0, good_png.size() / 2)); },
       "cannot decode image", 0},
      {"empty.png", [](const fs::path& p) { test::write_bytes(p, ""); }, "empty file", 0},
      {"wide.png", [](const fs::path& p) { test::write_bytes(p, encode_png(test::make_image(60, 40, 3))); },
       "not square", 0},
      {"tiny.png", [](const fs::path& p) { test::write_bytes(p, encode_png(test::make_image(20, 20, 4))); },
       "smaller than --resolution 40", 40},
      {"mixed.png", [](const fs::path& p) { test::write_bytes(p, encode_png(test::make_image(36, 36, 5))); },
       "mixed sizes", 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path in = tmp / ("in-" + c.name), out = tmp / ("out-" + c.name);
    test::write_images(in, 3, 40, 40, ".png", 6);  // img_000..002 sort before the bad file
    c.make(in / ("z_" + c.name));
    auto o = options(in, out, Storage::kPng, 2, c.resolution);
    std::string err = error_of([&] { pack_images(o); });
    EXPECT_NE(err.find(c.expect), std::string::npos) << err;
    EXPECT_NE(err.find("z_" + c.name), std::string::npos) << "message must name the file: " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << "one line: " << err;
    // The shard before the bad input is complete; the failed one left nothing; no manifest claims completeness.
    EXPECT_FALSE(fs::exists(out / "dataset.json"));
    EXPECT_TRUE(fs::exists(out / "shard-00000.h5"));
    for (auto& e : fs::directory_iterator(out)) {
      EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
    }
    // With --on-corrupt=skip the bad file is listed in the manifest and the rest is packed.
    o.on_corrupt = OnCorrupt::kSkip;
    auto r = pack_images(o);
    EXPECT_EQ(r.manifest.count, 3);
    ASSERT_EQ(r.manifest.skipped.size(), 1u);
    EXPECT_EQ(r.manifest.skipped[0].key, "z_" + c.name);
    EXPECT_NE(r.manifest.skipped[0].reason.find(c.expect), std::string::npos);
  }
  // Every input bad: no empty dataset.json that would fail far away, in training; a data error naming the first.
  const fs::path in = tmp / "in-all-bad";
  fs::create_directories(in);
  test::write_bytes(in / "a.png", "not a png");
  test::write_bytes(in / "b.jpg", "not a jpeg");
  auto o = options(in, tmp / "out-all-bad", Storage::kPng, 2, 32);
  o.on_corrupt = OnCorrupt::kSkip;
  const std::string err = error_of([&] { pack_images(o); });
  EXPECT_NE(err.find("no rows: none of the 2 inputs made it into the dataset (2 skipped; the first, a.png:"),
            std::string::npos)
      << err;
  EXPECT_FALSE(fs::exists(tmp / "out-all-bad" / "dataset.json"));
  // --resolution 0 takes the first input that decodes: with skip, a bad first input is skipped, not fatal.
  test::write_images(in, 2, 32, 32, ".png", 5);
  auto first_bad = options(in, tmp / "out-first-bad", Storage::kPng, 8, 0);
  first_bad.on_corrupt = OnCorrupt::kSkip;
  const auto r = pack_images(first_bad);
  EXPECT_EQ(r.manifest.resolution, 32);
  EXPECT_EQ(r.manifest.count, 2);
  EXPECT_EQ(r.manifest.skipped.size(), 2u);
  first_bad.on_corrupt = OnCorrupt::kFail;
  first_bad.out = tmp / "out-first-bad-fail";
  EXPECT_NE(error_of([&] { pack_images(first_bad); }).find("a.png"), std::string::npos);
}

TEST(PackBadInput, AFailedRunNeverDamagesFinishedOutput) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 4, 32, 32, ".png", 8);
  pack_images(options(tmp / "in", tmp / "out", Storage::kPng, 2));
  const std::string manifest_before = test::read_bytes(tmp / "out" / "dataset.json");
  test::write_bytes(tmp / "in" / "img_001.png", "corrupted later");
  // A changed input means rewriting a finished dataset: refused, and the old manifest and shards stay intact.
  EXPECT_THROW(pack_images(options(tmp / "in", tmp / "out", Storage::kPng, 2)), UsageError);
  EXPECT_EQ(test::read_bytes(tmp / "out" / "dataset.json"), manifest_before);
  EXPECT_TRUE(verify_dataset(VerifyOptions{tmp / "out", true, 1}).ok());
  // With --overwrite the bad input stops the run; the folder no longer claims to be a finished dataset.
  auto o = options(tmp / "in", tmp / "out", Storage::kPng, 2);
  o.overwrite = true;
  EXPECT_THROW(pack_images(o), DataError);
  EXPECT_FALSE(fs::exists(tmp / "out" / "dataset.json"));
}

TEST(PackBadInput, UsageErrorsForImpossibleSettings) {
  test::TempDir tmp;
  test::write_images(tmp / "in", 2, 32, 32);
  auto o = options(tmp / "in", tmp / "out", Storage::kPng);
  o.deflate = 3;
  EXPECT_THROW(pack_images(o), UsageError);
  o = options(tmp / "in", tmp / "out", Storage::kPng, 0);
  EXPECT_THROW(pack_images(o), UsageError);
  o = options(tmp / "in", tmp / "out-deflate", Storage::kRaw);
  o.deflate = 10;
  EXPECT_THROW(pack_images(o), UsageError);
  EXPECT_FALSE(fs::exists(tmp / "out-deflate"));  // refused before anything is made
  EXPECT_THROW(parse_storage("tiff"), UsageError);
}

TEST(Pack, ReadsZipArchives) {
  test::TempDir tmp;
  test::write_images(tmp / "in" / "sub", 5, 32, 32, ".png", 11);
  const std::string zip = (tmp / "in.zip").string();
  auto r = test::run_command("cd " + (tmp / "in").string() + " && python3 -c \"import zipfile,os;z=zipfile.ZipFile('" +
                             zip + "','w');[z.write(os.path.join('sub',f)) for f in sorted(os.listdir('sub'))];z.close()\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto res = pack_images(options(zip, tmp / "out", Storage::kRaw, 2));
  EXPECT_EQ(res.manifest.count, 5);
  auto ds = Dataset::open(tmp / "out");
  EXPECT_EQ(ds->locate(0).shard->key(0), "sub/img_000.png");
  expect_round_trip(tmp / "out", (tmp / "in").string(), FitOptions{32, SquarePolicy::kNone, false});
}
