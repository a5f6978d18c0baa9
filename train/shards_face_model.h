// The face model that a shard folder's /coeffs belong to. Coefficients mean nothing without the model that made
// them, and both writers of annotated shards save that model beside them:
//   `facetex data annotate --out DIR`:  DIR/model.mat + DIR/uv.npy, named in DIR/annotate.json;
//   `facetex data synth --out W`:       W/model.mat + W/uv.npy beside W/world.json, the shards in W/shards.
// Training's dataset background mode takes its face model from here unless model.face_model_mat / _uv name one.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace facetex::train {

inline constexpr char kAnnotateRecordName[] = "annotate.json";  // in the annotated shard folder
inline constexpr char kWorldRecordName[] = "world.json";        // one folder above a synthetic world's shards/

struct FaceModelFiles {
  std::filesystem::path mat;
  std::filesystem::path uv;
  std::filesystem::path recorded_in;  // annotate.json or world.json
};

// The model recorded beside `shards` (a folder with dataset.json), or nullopt when neither record exists.
// DataError when a record exists but names files that are missing or unreadable.
std::optional<FaceModelFiles> shards_face_model(const std::filesystem::path& shards);

// The face model training renders with in dataset background mode: the configured one (model.face_model_mat and
// model.face_model_uv, both or neither) or, when none is configured, the one recorded beside the shards.
// UsageError when there is neither; DataError naming the key when a configured file does not exist.
// `compare_with_recorded`: read both models' bytes to tell whether the configured one is the recorded one (one rank
// of a job is enough: the files are the same for all, and a BFM .mat is large).
struct DatasetFaceModel {
  FaceModelFiles files;      // recorded_in is empty for a configured model
  std::string mismatch;      // non-empty: the configured model is not the one the shards record (a warning)
};
DatasetFaceModel resolve_dataset_face_model(const std::string& configured_mat, const std::string& configured_uv,
                                            const std::filesystem::path& shards, bool compare_with_recorded = true);

// True when the two files hold the same bytes (the same model, wherever it was copied to).
bool same_file_contents(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace facetex::train
