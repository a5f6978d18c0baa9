#include "data/shard_format.h"

#include "core/error.h"

namespace facetex::data {

std::string storage_name(Storage storage) {
  switch (storage) {
    case Storage::kRaw: return "raw";
    case Storage::kPng: return "png";
    case Storage::kJpeg: return "jpeg";
  }
  return "?";
}

Storage parse_storage(const std::string& text) {
  if (text == "raw") return Storage::kRaw;
  if (text == "png") return Storage::kPng;
  if (text == "jpeg") return Storage::kJpeg;
  throw UsageError(fmt::format("unknown storage '{}' (raw, png, jpeg)", text));
}

std::string shard_file_name(int64_t index) { return fmt::format("shard-{:05d}.h5", index); }

}  // namespace facetex::data
