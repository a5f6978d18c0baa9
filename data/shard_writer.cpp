#include "data/shard_writer.h"

#ifdef FACETEX_HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

#include <tuple>

#include "core/atomic_file.h"
#include "core/crc32.h"
#include "core/error.h"
#include "core/h5.h"

namespace fs = std::filesystem;

namespace facetex::data {

struct ShardWriter::Impl {
  explicit Impl(fs::path final_path) : file(std::move(final_path)) {}
  AtomicFile file;
  ShardHeader header;
  int deflate = 0;
  h5::Id h5file, data;
  std::vector<std::string> keys;
  std::vector<uint32_t> crcs;
  std::vector<uint64_t> offsets{0};
  std::vector<std::tuple<std::string, std::vector<float>, std::vector<hsize_t>>> float_annotations;
  std::vector<std::tuple<std::string, std::vector<uint8_t>, std::vector<hsize_t>>> byte_annotations;
  hsize_t row_bytes = 0;
  bool committed = false;

  std::string where() const { return file.final_path().string(); }
};

ShardWriter::ShardWriter(fs::path final_path, const ShardHeader& header, int deflate_level)
    : impl_(std::make_unique<Impl>(std::move(final_path))) {
  FACETEX_CHECK_USAGE(deflate_level >= 0 && deflate_level <= 9, "deflate level must be 0..9, got {}", deflate_level);
  FACETEX_CHECK_USAGE(header.resolution > 0, "shard resolution must be positive");
  impl_->header = header;
  impl_->deflate = header.storage == Storage::kRaw ? deflate_level : 0;
  impl_->h5file = h5::create_file(impl_->file.temp_path().string());
  const hsize_t r = static_cast<hsize_t>(header.resolution);
  impl_->row_bytes = r * r * kChannels;
  h5::Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (header.storage == Storage::kRaw) {
    hsize_t dims[4] = {0, r, r, kChannels}, maxdims[4] = {H5S_UNLIMITED, r, r, kChannels}, chunk[4] = {1, r, r, 3};
    h5::Id space(H5Screate_simple(4, dims, maxdims));
    H5Pset_chunk(dcpl, 4, chunk);
    if (impl_->deflate > 0) H5Pset_deflate(dcpl, static_cast<unsigned>(impl_->deflate));
    impl_->data = h5::Id(H5Dcreate2(impl_->h5file, kImagesDataset, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  } else {
    hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {kEncodedChunkBytes};
    h5::Id space(H5Screate_simple(1, dims, maxdims));
    H5Pset_chunk(dcpl, 1, chunk);
    impl_->data = h5::Id(H5Dcreate2(impl_->h5file, kEncodedDataset, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  }
  FACETEX_CHECK_RUNTIME(impl_->data.valid(), "{}: cannot create image dataset: {}", impl_->where(), h5::last_error());
}

ShardWriter::~ShardWriter() = default;

int64_t ShardWriter::count() const { return static_cast<int64_t>(impl_->keys.size()); }

void ShardWriter::append(const std::string& key, std::string_view payload, uint32_t crc, std::string_view zlib_chunk) {
  Impl& s = *impl_;
  FACETEX_CHECK_RUNTIME(!s.committed, "{}: append after commit", s.where());
  const hsize_t row = s.keys.size();
  if (s.header.storage == Storage::kRaw) {
    FACETEX_CHECK_RUNTIME(payload.size() == s.row_bytes, "{}: raw row of {} bytes, expected {}", s.where(),
                          payload.size(), s.row_bytes);
    const hsize_t r = static_cast<hsize_t>(s.header.resolution);
    hsize_t dims[4] = {row + 1, r, r, kChannels};
    FACETEX_CHECK_RUNTIME(H5Dset_extent(s.data, dims) >= 0, "{}: cannot extend /images: {}", s.where(),
                          h5::last_error());
    hsize_t offset[4] = {row, 0, 0, 0};
    if (!zlib_chunk.empty() && s.deflate > 0) {
      FACETEX_CHECK_RUNTIME(H5Dwrite_chunk(s.data, H5P_DEFAULT, 0, offset, zlib_chunk.size(), zlib_chunk.data()) >= 0,
                            "{}: cannot write chunk {}: {}", s.where(), row, h5::last_error());
    } else {
      hsize_t count[4] = {1, r, r, kChannels};
      h5::Id fspace(H5Dget_space(s.data));
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, offset, nullptr, count, nullptr);
      h5::Id mspace(H5Screate_simple(4, count, nullptr));
      FACETEX_CHECK_RUNTIME(H5Dwrite(s.data, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, payload.data()) >= 0,
                            "{}: cannot write row {}: {}", s.where(), row, h5::last_error());
    }
  } else {
    const hsize_t begin = s.offsets.back(), n = payload.size();
    hsize_t dims[1] = {begin + n};
    FACETEX_CHECK_RUNTIME(H5Dset_extent(s.data, dims) >= 0, "{}: cannot extend /encoded: {}", s.where(),
                          h5::last_error());
    if (n > 0) {
      h5::Id fspace(H5Dget_space(s.data));
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &begin, nullptr, &n, nullptr);
      h5::Id mspace(H5Screate_simple(1, &n, nullptr));
      FACETEX_CHECK_RUNTIME(H5Dwrite(s.data, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, payload.data()) >= 0,
                            "{}: cannot write row {}: {}", s.where(), row, h5::last_error());
    }
    s.offsets.push_back(begin + n);
  }
  s.keys.push_back(key);
  s.crcs.push_back(crc);
}

void ShardWriter::set_annotation(const std::string& name, std::vector<float> values, std::vector<hsize_t> dims) {
  impl_->float_annotations.emplace_back(name, std::move(values), std::move(dims));
}

void ShardWriter::set_annotation(const std::string& name, std::vector<uint8_t> values, std::vector<hsize_t> dims) {
  impl_->byte_annotations.emplace_back(name, std::move(values), std::move(dims));
}

namespace {
template <typename T>
void write_annotation(hid_t file, const std::string& where, hsize_t rows,
                      const std::tuple<std::string, std::vector<T>, std::vector<hsize_t>>& a) {
  const auto& [name, values, dims] = a;
  FACETEX_CHECK_RUNTIME(!dims.empty() && dims[0] == rows, "{}: annotation /{} has {} rows, the shard {}", where, name,
                        dims.empty() ? 0 : dims[0], rows);
  size_t total = 1;
  for (auto d : dims) total *= d;
  FACETEX_CHECK_RUNTIME(values.size() == total, "{}: annotation /{} has {} values for shape {}", where, name,
                        values.size(), dims);
  h5::Layout layout;
  layout.chunk = dims;
  layout.chunk[0] = 1;
  if (rows == 0) layout.chunk.clear();
  // Pixels carry a CRC per row; an annotation carries one for all its values (write_dataset's crc32 attribute, which
  // `data verify` checks), so a flipped bit in a face's coefficients is found as surely as one in its image.
  static_assert(std::string_view(kAnnotationCrc32Attr) == std::string_view(h5::kCrc32Attr));
  h5::write_dataset(file, name, values.data(), dims, layout);
}
}  // namespace

ShardSummary ShardWriter::commit() {
  Impl& s = *impl_;
  FACETEX_CHECK_RUNTIME(!s.committed, "{}: committed twice", s.where());
  const hsize_t n = s.keys.size();
  for (const auto& a : s.float_annotations) write_annotation(s.h5file, s.where(), n, a);
  for (const auto& a : s.byte_annotations) write_annotation(s.h5file, s.where(), n, a);
  h5::write_strings(s.h5file, kKeysDataset, s.keys);
  h5::write_dataset(s.h5file, kCrc32Dataset, s.crcs.data(), {n});
  if (s.header.storage != Storage::kRaw) {
    h5::write_dataset(s.h5file, kOffsetsDataset, s.offsets.data(), {n + 1});
  }
  h5::write_attr(s.h5file, "format", kShardFormat);
  h5::write_attr(s.h5file, "version", kShardVersion);
  h5::write_attr(s.h5file, "storage", storage_name(s.header.storage));
  h5::write_attr(s.h5file, "resolution", s.header.resolution);
  h5::write_attr(s.h5file, "channels", int64_t{kChannels});
  h5::write_attr(s.h5file, "count", static_cast<int64_t>(n));
  h5::write_attr(s.h5file, "input_begin", s.header.input_begin);
  h5::write_attr(s.h5file, "source_digest", s.header.source_digest);
  h5::write_attr(s.h5file, "created_by", s.header.created_by);
  s.data.reset();
  FACETEX_CHECK_RUNTIME(H5Fflush(s.h5file, H5F_SCOPE_GLOBAL) >= 0, "{}: flush failed: {}", s.where(), h5::last_error());
  s.h5file.reset();
  s.file.commit();
  s.committed = true;
  ShardSummary out;
  out.file = s.file.final_path().filename().string();
  out.count = static_cast<int64_t>(n);
  out.bytes = static_cast<int64_t>(fs::file_size(s.file.final_path()));
  out.rows_crc32 = crc32(s.crcs.data(), s.crcs.size() * sizeof(uint32_t));
  out.input_begin = s.header.input_begin;
  return out;
}

std::string zlib_compress(std::string_view data, int level) {
#ifdef FACETEX_HAVE_LIBDEFLATE
  thread_local std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(nullptr,
                                                                                        libdeflate_free_compressor);
  thread_local int c_level = -1;
  if (!c || c_level != level) {
    c.reset(libdeflate_alloc_compressor(level));
    c_level = level;
  }
  std::string out(libdeflate_zlib_compress_bound(c.get(), data.size()), '\0');
  size_t n = libdeflate_zlib_compress(c.get(), data.data(), data.size(), out.data(), out.size());
  FACETEX_CHECK_RUNTIME(n > 0, "zlib compression failed");
  out.resize(n);
  return out;
#else
  uLongf n = compressBound(data.size());
  std::string out(n, '\0');
  FACETEX_CHECK_RUNTIME(compress2(reinterpret_cast<Bytef*>(out.data()), &n,
                                  reinterpret_cast<const Bytef*>(data.data()), data.size(), level) == Z_OK,
                        "zlib compression failed");
  out.resize(n);
  return out;
#endif
}

ShardSummary summarize_shard(const fs::path& path) {
  h5::Id f = h5::open_file(path.string());
  auto crcs = h5::read_dataset<uint32_t>(f, kCrc32Dataset);
  ShardSummary out;
  out.file = path.filename().string();
  out.count = h5::read_attr_int(f, "count");
  out.input_begin = h5::read_attr_int(f, "input_begin");
  out.bytes = static_cast<int64_t>(fs::file_size(path));
  out.rows_crc32 = crc32(crcs.data(), crcs.size() * sizeof(uint32_t));
  return out;
}

}  // namespace facetex::data
