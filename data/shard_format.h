// The HDF5 shard schema (docs/formats.md has the full description, readable from h5py).
//
//   shard-00042.h5                                  attrs: format="facetex-shard", version=1, storage, resolution,
//                                                          channels=3, count, created_by, input_begin, source_digest
//   /images   uint8 [N,H,W,3], chunk (1,H,W,3), optional deflate        (storage = "raw")
//   /encoded  uint8 [total_bytes], chunk 1 MiB, PNG/JPEG files back to back  (storage = "png" | "jpeg")
//   /offsets  uint64 [N+1]: row i is encoded[offsets[i] : offsets[i+1]]
//   /keys     string [N]: source path inside the input folder/zip
//   /crc32    uint32 [N]: CRC-32 (zlib polynomial) of the row's image bytes (raw HWC pixels, or the encoded file)
//   /<annotation>  float32 or uint8 [N, ...]  attrs: crc32 (of all its values)      (data annotate, data synth)
//
// Encoded rows are a flat byte dataset plus offsets rather than an HDF5 variable-length dataset: variable-length
// data lives in HDF5's global heap and can only be read through the (serialised) library, while flat chunks have
// fixed file addresses that loader threads read with pread() in parallel, outside the HDF5 lock.
#pragma once

#include <cstdint>
#include <string>

namespace facetex::data {

inline constexpr char kShardFormat[] = "facetex-shard";
inline constexpr int64_t kShardVersion = 1;
inline constexpr char kImagesDataset[] = "images";
inline constexpr char kEncodedDataset[] = "encoded";
inline constexpr char kOffsetsDataset[] = "offsets";
inline constexpr char kKeysDataset[] = "keys";
inline constexpr char kCrc32Dataset[] = "crc32";
// Every other root dataset is an annotation (one row per image: /landmarks, /coeffs, /gt_texture, ...), with an
// int64 attribute "crc32": the CRC-32 of its values in native byte order (float32 or uint8), row after row.
inline constexpr char kAnnotationCrc32Attr[] = "crc32";
inline constexpr uint64_t kEncodedChunkBytes = 1 << 20;
inline constexpr int64_t kChannels = 3;

enum class Storage { kRaw, kPng, kJpeg };
std::string storage_name(Storage storage);
Storage parse_storage(const std::string& text);  // UsageError for anything but raw|png|jpeg

// "shard-00042.h5"
std::string shard_file_name(int64_t index);

// The attributes of one shard.
struct ShardHeader {
  Storage storage = Storage::kRaw;
  int64_t resolution = 0;
  int64_t channels = kChannels;
  int64_t count = 0;
  int64_t input_begin = 0;    // index of the shard's first slot in the sorted input list (provenance)
  std::string source_digest;  // hash of what was packed (inputs + settings): lets a re-run skip finished shards
  std::string created_by;
};

}  // namespace facetex::data
