// The face model of a shard folder's coefficients (train/shards_face_model.h): found beside annotate's output and
// above a synthetic world's shards, taken by default, overridable, and every wrong case is one clear error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <functional>

#include "core/error.h"
#include "tests/support/fixtures.h"
#include "models/face3d/morphable_model.h"
#include "train/annotate.h"
#include "train/shards_face_model.h"

using namespace facetex;
using namespace facetex::train;
namespace fs = std::filesystem;

namespace {

// A model is only files here: what is resolved is which files, not what they hold.
void write_model(const fs::path& dir, const std::string& tag) {
  fs::create_directories(dir);
  test::write_bytes(dir / "model.mat", "mat " + tag);
  test::write_bytes(dir / "uv.npy", "uv " + tag);
}

// What `facetex data synth --out W` leaves: W/world.json, W/model.mat, W/uv.npy, W/shards/.
fs::path write_world(const fs::path& world) {
  write_model(world, "world");
  fs::create_directories(world / "shards");
  test::write_bytes(world / kWorldRecordName, "{}");
  return world / "shards";
}

template <typename E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return {};
}

}  // namespace

TEST(ShardsFaceModel, SyntheticWorldAndAnnotateRecords) {
  test::TempDir tmp;
  const fs::path world = tmp / "world";
  write_world(world);
  for (const fs::path& shards : {world / "shards", fs::path((world / "shards").string() + "/")}) {
    const auto m = shards_face_model(shards);
    ASSERT_TRUE(m.has_value()) << shards;
    EXPECT_EQ(m->mat, fs::absolute(world) / "model.mat");
    EXPECT_EQ(m->uv, fs::absolute(world) / "uv.npy");
    EXPECT_EQ(m->recorded_in, fs::absolute(world) / kWorldRecordName);
  }
  // facetex data annotate: DIR/annotate.json names DIR/model.mat and DIR/uv.npy; it wins over a world above.
  const fs::path ann = world / "annotated";
  write_model(ann, "annotated");
  test::write_bytes(ann / kAnnotateRecordName,
                    nlohmann::json{{"face_model_mat", "model.mat"}, {"face_model_uv", "uv.npy"}}.dump());
  const auto a = shards_face_model(ann);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->mat, ann / "model.mat");
  EXPECT_EQ(a->recorded_in, ann / kAnnotateRecordName);
  // No record: packed photos.
  fs::create_directories(tmp / "packed");
  EXPECT_FALSE(shards_face_model(tmp / "packed").has_value());
}

TEST(ShardsFaceModel, BrokenRecordsAreDataErrorsNamingTheRecord) {
  test::TempDir tmp;
  const fs::path ann = tmp / "annotated";
  fs::create_directories(ann);
  test::write_bytes(ann / kAnnotateRecordName, "{not json");
  EXPECT_NE(message_of<DataError>([&] { shards_face_model(ann); }).find("annotate.json: not valid JSON"),
            std::string::npos);
  test::write_bytes(ann / kAnnotateRecordName, nlohmann::json{{"face_model_mat", "model.mat"}}.dump());
  EXPECT_NE(message_of<DataError>([&] { shards_face_model(ann); }).find("face_model_mat / face_model_uv missing"),
            std::string::npos);
  test::write_bytes(ann / kAnnotateRecordName,
                    nlohmann::json{{"face_model_mat", "model.mat"}, {"face_model_uv", "uv.npy"}}.dump());
  const std::string gone = message_of<DataError>([&] { shards_face_model(ann); });
  EXPECT_NE(gone.find("annotate.json: the face model it records"), std::string::npos) << gone;
  EXPECT_NE(gone.find("model.mat, does not exist"), std::string::npos) << gone;
}

TEST(ShardsFaceModel, TheShardsModelIsTheDefaultAndAConfiguredOneOverrides) {
  test::TempDir tmp;
  const fs::path world = tmp / "world";
  const fs::path shards = write_world(world);

  const DatasetFaceModel d = resolve_dataset_face_model("", "", shards);
  EXPECT_EQ(d.files.mat, fs::absolute(world) / "model.mat");
  EXPECT_TRUE(d.mismatch.empty());

  // A copy of the same model elsewhere: no warning. Another model: a warning naming both.
  write_model(tmp / "copy", "world");
  const DatasetFaceModel c =
      resolve_dataset_face_model((tmp / "copy" / "model.mat").string(), (tmp / "copy" / "uv.npy").string(), shards);
  EXPECT_EQ(c.files.mat, tmp / "copy" / "model.mat");
  EXPECT_TRUE(c.files.recorded_in.empty());
  EXPECT_TRUE(c.mismatch.empty()) << c.mismatch;
  write_model(tmp / "other", "other");
  const DatasetFaceModel o =
      resolve_dataset_face_model((tmp / "other" / "model.mat").string(), (tmp / "other" / "uv.npy").string(), shards);
  EXPECT_NE(o.mismatch.find("not the one the shards' coefficients were made with"), std::string::npos) << o.mismatch;
  EXPECT_NE(o.mismatch.find("world.json"), std::string::npos) << o.mismatch;
  // Same .mat, other UVs: still another model.
  test::write_bytes(tmp / "other" / "model.mat", "mat world");
  EXPECT_FALSE(resolve_dataset_face_model((tmp / "other" / "model.mat").string(),
                                          (tmp / "other" / "uv.npy").string(), shards).mismatch.empty());

  // A configured file that does not exist names the key and the shards' own model.
  const std::string missing = message_of<DataError>(
      [&] { resolve_dataset_face_model((tmp / "nope.mat").string(), (tmp / "copy" / "uv.npy").string(), shards); });
  EXPECT_NE(missing.find("nope.mat: face model file does not exist (model.face_model_mat)"), std::string::npos)
      << missing;
  EXPECT_NE(missing.find("the shards' own model is " + (fs::absolute(world) / "model.mat").string()),
            std::string::npos) << missing;
  // One key without the other is a usage error naming the one set.
  EXPECT_NE(message_of<UsageError>([&] { resolve_dataset_face_model("a.mat", "", shards); })
                .find("got only model.face_model_mat"), std::string::npos);
  // No configured model and no record: a usage error saying what to set.
  fs::create_directories(tmp / "packed");
  const std::string none = message_of<UsageError>([&] { resolve_dataset_face_model("", "", tmp / "packed"); });
  EXPECT_NE(none.find("records none"), std::string::npos) << none;
  EXPECT_NE(none.find("set model.face_model_mat and model.face_model_uv"), std::string::npos) << none;
}

// --model MAT:UV with ':' inside the paths (a folder named after a time or a host:port): split where the left side
// names a file, so that the model loads; a missing file is still named.
TEST(ShardsFaceModel, ModelSpecPathsMayHoldColons) {
  test::TempDir tmp;
  models::face3d::SyntheticModelOptions so;
  so.grid = 8;
  const auto model = models::face3d::make_synthetic_model(so);
  const fs::path dir = tmp / "run:12:00", mat = dir / "m:1.mat", uv = dir / "uv:1.npy";
  fs::create_directories(dir);
  models::face3d::save_morphable_model(model, mat, uv);
  const ModelChoice c = load_model_choice(mat.string() + ":" + uv.string(), 0, 40, tmp.path());
  EXPECT_EQ(c.name, mat.string() + ":" + uv.string());
  EXPECT_TRUE(c.model.mean_shape.equal(model.mean_shape));
  EXPECT_TRUE(c.model.uv.equal(model.uv));
  const std::string missing = message_of<DataError>([&] { load_model_choice(mat.string() + ":" + (dir / "no.npy").string(), 0, 40, tmp.path()); });
  EXPECT_NE(missing.find("no.npy"), std::string::npos) << missing;
  EXPECT_NE(message_of<UsageError>([&] { load_model_choice("model.mat", 0, 40, tmp.path()); }).find("MAT:UV"), std::string::npos);
}
