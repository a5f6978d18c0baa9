// Thin RAII layer over the HDF5 C API, used for every binary artefact (shards, weights, checkpoints).
// Every failure becomes an exception whose message names the file/object and carries HDF5's own reason;
// HDF5's automatic error printing is switched off so users see one line, not a stack dump.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace facetex::h5 {

// Owns one HDF5 identifier (file, group, dataset, dataspace, type, property list, attribute).
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: lets an Id go straight into H5* calls
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's automatic error printing (idempotent; every open/create below calls it).
void init();
// HDF5 calls from several threads need a thread-safe HDF5 build (Debian's and most distributions' are). With any
// other build, hold this lock around HDF5 calls made from worker threads; with a thread-safe one it is a no-op.
std::unique_lock<std::mutex> serialize();
// The most specific message on HDF5's current error stack ("" when empty), e.g. "truncated file: eof = ...".
std::string last_error();

// Files. Failures are DataError (open) or RuntimeError (create) naming the path and HDF5's reason.
Id open_file(const std::string& path, bool writable = false);
Id create_file(const std::string& path);  // truncates
std::string file_name(hid_t obj);

// Objects.
bool exists(hid_t loc, const std::string& name);  // a direct child link
std::vector<std::string> child_names(hid_t group);  // the direct children's names, sorted
Id open_dataset(hid_t loc, const std::string& name);  // DataError "<file>: missing dataset /<name>"
Id open_group(hid_t loc, const std::string& name);
Id create_group(hid_t loc, const std::string& name);
std::vector<hsize_t> shape(hid_t dataset);

// Native memory type for T (uint8, int32, uint32, int64, uint64, float, double).
template <typename T>
hid_t native_type();

// Attributes (scalars and strings; strings are variable-length UTF-8, readable from h5py as str).
bool has_attr(hid_t obj, const std::string& name);
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const char* value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
std::string read_attr_string(hid_t obj, const std::string& name);
int64_t read_attr_int(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);

// Datasets. write_dataset stores the values' CRC-32 (native byte order, zlib's polynomial) in an int64 attribute
// "crc32"; read_dataset checks it when present and the file's type is T's, so a byte flipped on disk in a
// checkpoint, a weight file or an annotation is a DataError naming the dataset instead of values used silently.
inline constexpr char kCrc32Attr[] = "crc32";
struct Layout {
  std::vector<hsize_t> chunk;  // empty: contiguous
  int deflate = 0;             // 0: no compression; 1..9: deflate level (needs chunk)
};
template <typename T>
void write_dataset(hid_t loc, const std::string& name, const T* data, const std::vector<hsize_t>& dims,
                   const Layout& layout = {});
template <typename T>
std::vector<T> read_dataset(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);
// Reads a hyperslab [start, start+count) along every dimension into `out` (sized by the caller).
template <typename T>
void read_slab(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, T* out);

// Every dataset under `loc` (recursively) whose stored values do not match its crc32 attribute, as
// "/group/name" paths; datasets without the attribute are not read. Reads everything that has one.
std::vector<std::string> checksum_mismatches(hid_t loc);

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_strings(hid_t loc, const std::string& name);

}  // namespace facetex::h5
