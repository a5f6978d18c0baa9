#include "data/shard_reader.h"

#include <fcntl.h>
#include <unistd.h>

#ifdef FACETEX_HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <mutex>

#include "core/crc32.h"
#include "core/error.h"
#include "core/h5.h"
#include "data/image_codec.h"

namespace fs = std::filesystem;

namespace facetex::data {
namespace {

enum class Access { kPread, kPreadInflate, kHdf5 };

// Raw rows are read in blocks of this many bytes: small enough that the block stays in L1/L2 between the
// read, the CRC and the deinterleave (measured: 64 KiB reads run ~3.5x faster than 256 KiB+ ones here).
constexpr size_t kBlockBytes = 64 << 10;

struct Extent {
  uint64_t addr = 0;
  uint64_t size = 0;  // stored bytes (compressed size when deflated)
};

// Inflates a zlib stream into exactly `expected` bytes; false on any corruption.
bool zlib_inflate_exact(const std::string& in, uint8_t* out, size_t expected) {
#ifdef FACETEX_HAVE_LIBDEFLATE
  thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  size_t got = 0;
  return libdeflate_zlib_decompress(d.get(), in.data(), in.size(), out, expected, &got) == LIBDEFLATE_SUCCESS &&
         got == expected;
#else
  uLongf n = expected;
  return uncompress(out, &n, reinterpret_cast<const Bytef*>(in.data()), in.size()) == Z_OK && n == expected;
#endif
}

}  // namespace

struct ShardReader::Impl {
  std::string path;
  ShardHeader header;
  h5::Id file, data;
  int fd = -1;
  Access access = Access::kHdf5;
  std::vector<uint32_t> crcs;
  std::vector<uint64_t> offsets;      // encoded storage
  std::vector<Extent> row_extents;    // raw storage, fast path: one chunk per row
  std::vector<uint64_t> chunk_addrs;  // encoded storage, fast path: file address of each chunk
  uint64_t encoded_chunk = 0;
  uint64_t contiguous_base = 0;       // contiguous layout (h5py default without chunks)
  bool contiguous = false;
  uint64_t row_bytes = 0;
  mutable std::once_flag keys_once;
  mutable std::vector<std::string> keys;

  ~Impl() {
    if (fd >= 0) ::close(fd);
  }

  [[noreturn]] void bad(const std::string& what) const { throw DataError(fmt::format("{}: {}", path, what)); }

  void pread_exact(uint64_t addr, uint8_t* out, size_t n, int64_t row, const ShardReader& self) const {
    size_t done = 0;
    while (done < n) {
      ssize_t got = ::pread(fd, out + done, n - done, static_cast<off_t>(addr + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        throw DataError(fmt::format("{}: {}", self.describe_row(row),
                                    got == 0 ? "short read (file truncated?)" : std::string(std::strerror(errno))));
      }
      done += static_cast<size_t>(got);
    }
  }
};

ShardReader::ShardReader(const fs::path& path) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.path = path.string();
  s.file = h5::open_file(s.path);
  FACETEX_CHECK_DATA(h5::has_attr(s.file, "format") && h5::read_attr_string(s.file, "format") == kShardFormat,
                     "{}: not a facetex shard (attribute format != '{}')", s.path, kShardFormat);
  int64_t version = h5::read_attr_int(s.file, "version");
  FACETEX_CHECK_DATA(version >= 1 && version <= kShardVersion, "{}: shard version {} is not supported (this build reads 1..{})",
                     s.path, version, kShardVersion);
  try {
    s.header.storage = parse_storage(h5::read_attr_string(s.file, "storage"));
  } catch (const UsageError& e) {
    s.bad(e.what());
  }
  s.header.resolution = h5::read_attr_int(s.file, "resolution");
  s.header.channels = h5::read_attr_int(s.file, "channels");
  s.header.count = h5::read_attr_int(s.file, "count");
  s.header.input_begin = h5::has_attr(s.file, "input_begin") ? h5::read_attr_int(s.file, "input_begin") : 0;
  s.header.source_digest = h5::has_attr(s.file, "source_digest") ? h5::read_attr_string(s.file, "source_digest") : "";
  s.header.created_by = h5::has_attr(s.file, "created_by") ? h5::read_attr_string(s.file, "created_by") : "";
  const int64_t n = s.header.count, r = s.header.resolution;
  if (r <= 0 || r > 65536) s.bad(fmt::format("invalid resolution {}", r));
  if (s.header.channels != kChannels) s.bad(fmt::format("channels = {}, expected 3", s.header.channels));
  if (n < 0) s.bad(fmt::format("invalid count {}", n));
  s.row_bytes = static_cast<uint64_t>(r) * r * kChannels;

  std::vector<hsize_t> dims;
  s.crcs = h5::read_dataset<uint32_t>(s.file, kCrc32Dataset, &dims);
  if (dims != std::vector<hsize_t>{hsize_t(n)}) s.bad(fmt::format("/crc32 has {} rows, count is {}", s.crcs.size(), n));
  h5::Id keys = h5::open_dataset(s.file, kKeysDataset);
  if (h5::shape(keys) != std::vector<hsize_t>{hsize_t(n)}) s.bad("/keys does not have count rows");

  const bool raw = s.header.storage == Storage::kRaw;
  s.data = h5::open_dataset(s.file, raw ? kImagesDataset : kEncodedDataset);
  {
    h5::Id type(H5Dget_type(s.data));
    if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 || H5Tget_sign(type) != H5T_SGN_NONE) {
      s.bad("image data is not uint8");
    }
  }
  auto shape = h5::shape(s.data);
  if (raw) {
    std::vector<hsize_t> expect = {hsize_t(n), hsize_t(r), hsize_t(r), hsize_t(kChannels)};
    if (shape != expect) s.bad(fmt::format("/images shape does not match [count={}, {}, {}, 3]", n, r, r));
  } else {
    if (shape.size() != 1) s.bad("/encoded must be 1-D");
    s.offsets = h5::read_dataset<uint64_t>(s.file, kOffsetsDataset, &dims);
    if (dims != std::vector<hsize_t>{hsize_t(n + 1)}) s.bad("/offsets must have count+1 entries");
    if (s.offsets[0] != 0) s.bad("/offsets[0] must be 0");
    for (int64_t i = 0; i < n; ++i) {
      if (s.offsets[i + 1] < s.offsets[i]) s.bad(fmt::format("/offsets decrease at row {}", i));
    }
    if (s.offsets[n] != shape[0]) s.bad(fmt::format("/offsets end at {} but /encoded holds {} bytes", s.offsets[n], shape[0]));
  }

  // Decide how rows are read: pread at known file addresses when the layout allows it.
  h5::Id dcpl(H5Dget_create_plist(s.data));
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  const int nfilters = H5Pget_nfilters(dcpl);
  bool deflate_only = false;
  if (nfilters == 1) {
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    char name[64];
    unsigned config = 0;
    deflate_only = H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof(name), name, &config) == H5Z_FILTER_DEFLATE;
  }
  if (layout == H5D_CONTIGUOUS && nfilters == 0) {
    haddr_t base = H5Dget_offset(s.data);
    s.contiguous = true;
    s.contiguous_base = base;
    s.access = (base == HADDR_UNDEF) ? Access::kHdf5 : Access::kPread;  // HADDR_UNDEF: empty, never written
  } else if (layout == H5D_CHUNKED && (nfilters == 0 || (raw && deflate_only))) {
    std::vector<hsize_t> chunk(shape.size());
    H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    if (raw && chunk == std::vector<hsize_t>{1, hsize_t(r), hsize_t(r), hsize_t(kChannels)}) {
      s.row_extents.resize(static_cast<size_t>(n));
      bool ok = true;
      for (int64_t i = 0; i < n && ok; ++i) {
        hsize_t offset[4] = {hsize_t(i), 0, 0, 0};
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t size = 0;
        ok = H5Dget_chunk_info_by_coord(s.data, offset, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF &&
             mask == 0 && (nfilters > 0 || size == s.row_bytes);
        s.row_extents[static_cast<size_t>(i)] = {addr, size};
      }
      if (ok) s.access = nfilters == 0 ? Access::kPread : Access::kPreadInflate;
      h5::last_error();
    } else if (!raw) {
      s.encoded_chunk = chunk[0];
      const uint64_t nchunks = (shape[0] + chunk[0] - 1) / chunk[0];
      s.chunk_addrs.resize(nchunks);
      bool ok = true;
      for (uint64_t c = 0; c < nchunks && ok; ++c) {
        hsize_t offset[1] = {c * chunk[0]};
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t size = 0;
        ok = H5Dget_chunk_info_by_coord(s.data, offset, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF &&
             size == chunk[0];
        s.chunk_addrs[c] = addr;
      }
      if (ok) s.access = Access::kPread;
      h5::last_error();
    }
  }
  if (s.access != Access::kHdf5) {
    s.fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    FACETEX_CHECK_DATA(s.fd >= 0, "{}: cannot open: {}", s.path, std::strerror(errno));
  }
}

ShardReader::~ShardReader() = default;

const ShardHeader& ShardReader::header() const { return impl_->header; }
const std::string& ShardReader::path() const { return impl_->path; }
int64_t ShardReader::count() const { return impl_->header.count; }
uint32_t ShardReader::stored_crc(int64_t row) const { return impl_->crcs.at(static_cast<size_t>(row)); }
const std::vector<uint32_t>& ShardReader::stored_crcs() const { return impl_->crcs; }
bool ShardReader::lock_free_reads() const { return impl_->access != Access::kHdf5; }

int64_t ShardReader::stored_bytes(int64_t row) const {
  if (impl_->header.storage == Storage::kRaw) return static_cast<int64_t>(impl_->row_bytes);
  return static_cast<int64_t>(impl_->offsets[row + 1] - impl_->offsets[row]);
}

void ShardReader::check_keys() const {
  auto lock = h5::serialize();
  h5::read_strings(impl_->file, kKeysDataset);
}

std::string ShardReader::key(int64_t row) const {
  std::call_once(impl_->keys_once, [this] {
    try {
      auto lock = h5::serialize();
      impl_->keys = h5::read_strings(impl_->file, kKeysDataset);
    } catch (const Error&) {
      impl_->keys.clear();
    }
  });
  if (row < 0 || static_cast<size_t>(row) >= impl_->keys.size()) return "?";
  return impl_->keys[static_cast<size_t>(row)];
}

bool ShardReader::has_annotation(const std::string& name) const {
  auto lock = h5::serialize();
  return h5::exists(impl_->file, name);
}

int64_t ShardReader::annotation_row_size(const std::string& name) const {
  auto lock = h5::serialize();
  h5::Id d = h5::open_dataset(impl_->file, name);
  auto dims = h5::shape(d);
  FACETEX_CHECK_DATA(!dims.empty() && int64_t(dims[0]) == impl_->header.count, "{}: /{} does not have one row per image",
                     impl_->path, name);
  int64_t n = 1;
  for (size_t i = 1; i < dims.size(); ++i) n *= static_cast<int64_t>(dims[i]);
  return n;
}

namespace {
template <typename T>
void read_annotation_row(hid_t file, const std::string& path, const std::string& name, int64_t row, T* out) {
  auto lock = h5::serialize();
  h5::Id d = h5::open_dataset(file, name);
  auto dims = h5::shape(d);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  FACETEX_CHECK_DATA(!dims.empty() && hsize_t(row) < dims[0], "{}: /{} has no row {}", path, name, row);
  start[0] = static_cast<hsize_t>(row);
  count[0] = 1;
  h5::read_slab<T>(d, start, count, out);
}
}  // namespace

void ShardReader::read_annotation(const std::string& name, int64_t row, float* out) const {
  read_annotation_row(impl_->file, impl_->path, name, row, out);
}

void ShardReader::read_annotation(const std::string& name, int64_t row, uint8_t* out) const {
  read_annotation_row(impl_->file, impl_->path, name, row, out);
}

std::vector<std::string> ShardReader::annotation_names() const {
  auto lock = h5::serialize();
  std::vector<std::string> out;
  for (std::string& name : h5::child_names(impl_->file)) {
    const bool image_schema = name == kImagesDataset || name == kEncodedDataset || name == kOffsetsDataset ||
                              name == kKeysDataset || name == kCrc32Dataset;
    if (!image_schema) out.push_back(std::move(name));
  }
  return out;
}

namespace {
template <typename T>
uint32_t crc_of_rows(hid_t dataset, const std::vector<hsize_t>& dims) {
  const hsize_t per_row = std::accumulate(dims.begin() + 1, dims.end(), hsize_t{1}, std::multiplies<hsize_t>());
  const hsize_t block = std::max<hsize_t>(1, (hsize_t{16} << 20) / std::max<hsize_t>(1, per_row * sizeof(T)));
  std::vector<T> values;
  uint32_t crc = 0;
  for (hsize_t begin = 0; begin < dims[0]; begin += block) {
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    start[0] = begin;
    count[0] = std::min(block, dims[0] - begin);
    values.resize(count[0] * per_row);
    h5::read_slab<T>(dataset, start, count, values.data());
    crc = crc32(values.data(), values.size() * sizeof(T), crc);
  }
  return crc;
}
}  // namespace

std::optional<ShardReader::AnnotationChecksum> ShardReader::annotation_checksum(const std::string& name) const {
  auto lock = h5::serialize();
  h5::Id d = h5::open_dataset(impl_->file, name);
  const std::vector<hsize_t> dims = h5::shape(d);
  FACETEX_CHECK_DATA(!dims.empty() && int64_t(dims[0]) == impl_->header.count,
                     "{}: /{} does not have one row per image", impl_->path, name);
  if (!h5::has_attr(d, kAnnotationCrc32Attr)) return std::nullopt;
  AnnotationChecksum out;
  out.recorded = static_cast<uint32_t>(h5::read_attr_int(d, kAnnotationCrc32Attr));
  h5::Id type(H5Dget_type(d));
  out.stored = H5Tget_class(type) == H5T_FLOAT ? crc_of_rows<float>(d, dims) : crc_of_rows<uint8_t>(d, dims);
  return out;
}

std::string ShardReader::describe_row(int64_t row) const {
  return fmt::format("{} row {} (key '{}')", impl_->path, row, key(row));
}

void ShardReader::read_row(int64_t row, std::string& out) const {
  const Impl& s = *impl_;
  FACETEX_CHECK_RUNTIME(row >= 0 && row < s.header.count, "{}: row {} out of range [0, {})", s.path, row,
                        s.header.count);
  const bool raw = s.header.storage == Storage::kRaw;
  const uint64_t begin = raw ? 0 : s.offsets[row];
  const uint64_t n = raw ? s.row_bytes : s.offsets[row + 1] - begin;
  out.resize(n);
  auto* dst = reinterpret_cast<uint8_t*>(out.data());
  switch (s.access) {
    case Access::kPread:
      if (s.contiguous) {
        s.pread_exact(s.contiguous_base + (raw ? uint64_t(row) * s.row_bytes : begin), dst, n, row, *this);
      } else if (raw) {
        s.pread_exact(s.row_extents[row].addr, dst, n, row, *this);
      } else {
        // Copy the row's byte range out of the chunks it spans.
        uint64_t pos = begin;
        while (pos < begin + n) {
          const uint64_t c = pos / s.encoded_chunk, in_chunk = pos % s.encoded_chunk;
          const uint64_t take = std::min(begin + n - pos, s.encoded_chunk - in_chunk);
          s.pread_exact(s.chunk_addrs[c] + in_chunk, dst + (pos - begin), take, row, *this);
          pos += take;
        }
      }
      break;
    case Access::kPreadInflate: {
      thread_local std::string compressed;
      compressed.resize(s.row_extents[row].size);
      s.pread_exact(s.row_extents[row].addr, reinterpret_cast<uint8_t*>(compressed.data()), compressed.size(), row,
                    *this);
      if (!zlib_inflate_exact(compressed, dst, n)) {
        throw DataError(fmt::format("{}: corrupt compressed chunk", describe_row(row)));
      }
      break;
    }
    case Access::kHdf5:
      try {
        auto lock = h5::serialize();
        if (raw) {
          const hsize_t r = static_cast<hsize_t>(s.header.resolution);
          h5::read_slab<uint8_t>(s.data, {hsize_t(row), 0, 0, 0}, {1, r, r, hsize_t(kChannels)}, dst);
        } else if (n > 0) {
          h5::read_slab<uint8_t>(s.data, {begin}, {n}, dst);
        }
      } catch (const Error& e) {
        throw DataError(fmt::format("{}: {}", describe_row(row), e.what()));
      }
      break;
  }
  const uint32_t crc = crc32(out.data(), out.size());
  if (crc != s.crcs[row]) {
    throw DataError(fmt::format("{}: crc32 mismatch (stored {:#010x}, computed {:#010x})", describe_row(row),
                                s.crcs[row], crc));
  }
}

void ShardReader::read_chw(int64_t row, bool xflip, uint8_t* out, std::string& scratch) const {
  const Impl& s = *impl_;
  if (s.header.storage == Storage::kRaw && s.access == Access::kPread) {
    // Block by block: read a few hundred KiB of rows, CRC them and deinterleave them while they are in cache.
    // Memory traffic is then one read of the stored bytes and one write of the output, like a plain read.
    FACETEX_CHECK_RUNTIME(row >= 0 && row < s.header.count, "{}: row {} out of range", s.path, row);
    const int r = static_cast<int>(s.header.resolution);
    const size_t row_bytes = size_t(r) * kChannels;
    const int rows_per_block = static_cast<int>(std::max<size_t>(1, kBlockBytes / row_bytes));
    const uint64_t base = s.contiguous ? s.contiguous_base + uint64_t(row) * s.row_bytes : s.row_extents[row].addr;
    scratch.resize(size_t(rows_per_block) * row_bytes);
    auto* block = reinterpret_cast<uint8_t*>(scratch.data());
    uint32_t crc = 0;
    for (int y0 = 0; y0 < r; y0 += rows_per_block) {
      const int n = std::min(rows_per_block, r - y0);
      s.pread_exact(base + uint64_t(y0) * row_bytes, block, size_t(n) * row_bytes, row, *this);
      crc = crc32(block, size_t(n) * row_bytes, crc);
      hwc_rows_to_chw(block, y0, n, r, r, xflip, out);
    }
    if (crc != s.crcs[row]) {
      throw DataError(fmt::format("{}: crc32 mismatch (stored {:#010x}, computed {:#010x})", describe_row(row),
                                  s.crcs[row], crc));
    }
    return;
  }
  read_row(row, scratch);
  const int r = static_cast<int>(impl_->header.resolution);
  if (impl_->header.storage == Storage::kRaw) {
    hwc_to_chw(reinterpret_cast<const uint8_t*>(scratch.data()), r, r, xflip, out);
  } else {
    decode_image_chw(scratch, r, r, xflip, out, describe_row(row));
  }
}

}  // namespace facetex::data
