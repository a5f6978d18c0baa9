#include "train/shards_face_model.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <system_error>

#include "core/atomic_file.h"
#include "core/error.h"

namespace facetex::train {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_record(const fs::path& file) {
  try {
    return nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(fmt::format("{}: not valid JSON: {}", file.string(), e.what()));
  }
}

FaceModelFiles checked(FaceModelFiles f) {
  for (const fs::path* p : {&f.mat, &f.uv}) {
    FACETEX_CHECK_DATA(fs::is_regular_file(*p), "{}: the face model it records, {}, does not exist",
                       f.recorded_in.string(), p->string());
  }
  return f;
}

}  // namespace

std::optional<FaceModelFiles> shards_face_model(const fs::path& shards) {
  const fs::path annotate = shards / kAnnotateRecordName;
  if (fs::is_regular_file(annotate)) {
    const nlohmann::json r = read_record(annotate);
    FACETEX_CHECK_DATA(r.contains("face_model_mat") && r.contains("face_model_uv") &&
                           r["face_model_mat"].is_string() && r["face_model_uv"].is_string(),
                       "{}: face_model_mat / face_model_uv missing", annotate.string());
    // Relative names are relative to the record's folder (annotate writes "model.mat").
    return checked({shards / r["face_model_mat"].get<std::string>(), shards / r["face_model_uv"].get<std::string>(),
                    annotate});
  }
  // A synthetic world: W/world.json, W/model.mat, W/uv.npy and the shards in W/shards.
  fs::path folder = fs::absolute(shards).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();  // "W/shards/" names W/shards
  const fs::path world = folder.parent_path() / kWorldRecordName;
  if (fs::is_regular_file(world)) {
    const fs::path dir = world.parent_path();
    return checked({dir / "model.mat", dir / "uv.npy", world});
  }
  return std::nullopt;
}

DatasetFaceModel resolve_dataset_face_model(const std::string& configured_mat, const std::string& configured_uv,
                                            const fs::path& shards, bool compare_with_recorded) {
  FACETEX_CHECK_USAGE(configured_mat.empty() == configured_uv.empty(),
                      "model.face_model_mat and model.face_model_uv are set together (got only {})",
                      configured_mat.empty() ? "model.face_model_uv" : "model.face_model_mat");
  const std::optional<FaceModelFiles> recorded = shards_face_model(shards);
  if (configured_mat.empty()) {
    FACETEX_CHECK_USAGE(recorded.has_value(),
                        "texture mode needs the face model of the shards' coefficients: {} records none (no {} in "
                        "it, no {} above it); set model.face_model_mat and model.face_model_uv",
                        shards.string(), kAnnotateRecordName, kWorldRecordName);
    return {*recorded, {}};
  }
  DatasetFaceModel r{{configured_mat, configured_uv, {}}, {}};
  const auto own = [&](const fs::path FaceModelFiles::*file) {
    return recorded ? fmt::format("; the shards' own model is {} (recorded in {}), taken when the model.face_model_* "
                                  "keys are not set", ((*recorded).*file).string(), recorded->recorded_in.string())
                    : std::string();
  };
  FACETEX_CHECK_DATA(fs::is_regular_file(configured_mat), "{}: face model file does not exist (model.face_model_mat){}",
                     configured_mat, own(&FaceModelFiles::mat));
  FACETEX_CHECK_DATA(fs::is_regular_file(configured_uv), "{}: face model file does not exist (model.face_model_uv){}",
                     configured_uv, own(&FaceModelFiles::uv));
  if (compare_with_recorded && recorded && !(same_file_contents(recorded->mat, r.files.mat) && same_file_contents(recorded->uv, r.files.uv))) {
    r.mismatch = fmt::format("the configured face model {} + {} is not the one the shards' coefficients were made "
                             "with ({} + {}, recorded in {}): faces are rendered with the configured one",
                             configured_mat, configured_uv, recorded->mat.string(), recorded->uv.string(),
                             recorded->recorded_in.string());
  }
  return r;
}

bool same_file_contents(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::equivalent(a, b, ec)) return true;
  const auto size_a = fs::file_size(a, ec);
  if (ec) return false;
  const auto size_b = fs::file_size(b, ec);
  if (ec || size_a != size_b) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::string ba(1 << 20, '\0'), bb(1 << 20, '\0');
  while (fa && fb) {
    fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
    fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
    if (fa.gcount() != fb.gcount() || ba.compare(0, fa.gcount(), bb, 0, fb.gcount()) != 0) return false;
  }
  return fa.eof() && fb.eof();
}

}  // namespace facetex::train
