#include "core/h5.h"

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "core/crc32.h"
#include "core/error.h"

namespace facetex::h5 {

void Id::reset() {
  if (id_ >= 0 && H5Iis_valid(id_) > 0) H5Idec_ref(id_);
  id_ = H5I_INVALID_HID;
}

void init() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::unique_lock<std::mutex> serialize() {
  static const bool threadsafe = [] {
    hbool_t ts = false;
    return H5is_library_threadsafe(&ts) >= 0 && ts;
  }();
  static std::mutex mu;
  return threadsafe ? std::unique_lock<std::mutex>() : std::unique_lock<std::mutex>(mu);
}

std::string last_error() {
  std::string innermost;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (n == 0 && err->desc != nullptr) *out = err->desc;  // n == 0 is the innermost (first pushed) entry
        return 0;
      },
      &innermost);
  H5Eclear2(H5E_DEFAULT);
  return innermost;
}

namespace {
std::string reason() {
  std::string e = last_error();
  return e.empty() ? std::string("HDF5 error") : e;
}
}  // namespace

Id open_file(const std::string& path, bool writable) {
  init();
  std::error_code ec;
  FACETEX_CHECK_DATA(std::filesystem::is_regular_file(path, ec), "{}: no such file", path);
  hid_t f = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  FACETEX_CHECK_DATA(f >= 0, "{}: cannot open as HDF5: {}", path, reason());
  return Id(f);
}

Id create_file(const std::string& path) {
  init();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  FACETEX_CHECK_RUNTIME(f >= 0, "{}: cannot create HDF5 file: {}", path, reason());
  return Id(f);
}

std::string file_name(hid_t obj) {
  ssize_t n = H5Fget_name(obj, nullptr, 0);
  if (n <= 0) return "<hdf5>";
  std::string s(static_cast<size_t>(n) + 1, '\0');
  H5Fget_name(obj, s.data(), s.size());
  s.resize(static_cast<size_t>(n));
  return s;
}

bool exists(hid_t loc, const std::string& name) {
  htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
  if (r < 0) last_error();
  return r > 0;
}

namespace {
herr_t collect_child_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> child_names(hid_t group) {
  std::vector<std::string> names;
  hsize_t index = 0;
  FACETEX_CHECK_DATA(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_child_name, &names) >= 0,
                     "{}: cannot list a group: {}", file_name(group), reason());
  std::sort(names.begin(), names.end());
  return names;
}

Id open_dataset(hid_t loc, const std::string& name) {
  FACETEX_CHECK_DATA(exists(loc, name), "{}: missing dataset /{}", file_name(loc), name);
  hid_t d = H5Dopen2(loc, name.c_str(), H5P_DEFAULT);
  FACETEX_CHECK_DATA(d >= 0, "{}: cannot open dataset /{}: {}", file_name(loc), name, reason());
  return Id(d);
}

Id open_group(hid_t loc, const std::string& name) {
  FACETEX_CHECK_DATA(exists(loc, name), "{}: missing group /{}", file_name(loc), name);
  hid_t g = H5Gopen2(loc, name.c_str(), H5P_DEFAULT);
  FACETEX_CHECK_DATA(g >= 0, "{}: cannot open group /{}: {}", file_name(loc), name, reason());
  return Id(g);
}

Id create_group(hid_t loc, const std::string& name) {
  hid_t g = H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  FACETEX_CHECK_RUNTIME(g >= 0, "{}: cannot create group /{}: {}", file_name(loc), name, reason());
  return Id(g);
}

std::vector<hsize_t> shape(hid_t dataset) {
  Id space(H5Dget_space(dataset));
  int rank = H5Sget_simple_extent_ndims(space);
  FACETEX_CHECK_DATA(rank >= 0, "{}: cannot read dataset shape: {}", file_name(dataset), reason());
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

template <> hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<int8_t>() { return H5T_NATIVE_INT8; }
template <> hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<uint32_t>() { return H5T_NATIVE_UINT32; }
template <> hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

namespace {

Id vlen_utf8_type() {
  Id t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

Id open_attr(hid_t obj, const std::string& name) {
  FACETEX_CHECK_DATA(has_attr(obj, name), "{}: missing attribute '{}'", file_name(obj), name);
  hid_t a = H5Aopen(obj, name.c_str(), H5P_DEFAULT);
  FACETEX_CHECK_DATA(a >= 0, "{}: cannot open attribute '{}': {}", file_name(obj), name, reason());
  return Id(a);
}

Id replace_attr(hid_t obj, const std::string& name, hid_t type) {
  if (has_attr(obj, name)) H5Adelete(obj, name.c_str());
  Id space(H5Screate(H5S_SCALAR));
  hid_t a = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  FACETEX_CHECK_RUNTIME(a >= 0, "{}: cannot write attribute '{}': {}", file_name(obj), name, reason());
  return Id(a);
}

template <typename T>
T read_attr_scalar(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  Id type(H5Aget_type(a));
  H5T_class_t cls = H5Tget_class(type);
  FACETEX_CHECK_DATA(cls == H5T_INTEGER || cls == H5T_FLOAT, "{}: attribute '{}' is not a number", file_name(obj),
                     name);
  T v{};
  FACETEX_CHECK_DATA(H5Aread(a, native_type<T>(), &v) >= 0, "{}: cannot read attribute '{}': {}", file_name(obj), name,
                     reason());
  return v;
}

}  // namespace

bool has_attr(hid_t obj, const std::string& name) {
  htri_t r = H5Aexists(obj, name.c_str());
  if (r < 0) last_error();
  return r > 0;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Id type = vlen_utf8_type();
  Id a = replace_attr(obj, name, type);
  const char* p = value.c_str();
  FACETEX_CHECK_RUNTIME(H5Awrite(a, type, &p) >= 0, "{}: cannot write attribute '{}'", file_name(obj), name);
}
void write_attr(hid_t obj, const std::string& name, const char* value) { write_attr(obj, name, std::string(value)); }

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  Id a = replace_attr(obj, name, H5T_STD_I64LE);
  FACETEX_CHECK_RUNTIME(H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0, "{}: cannot write attribute '{}'", file_name(obj),
                        name);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  Id a = replace_attr(obj, name, H5T_IEEE_F64LE);
  FACETEX_CHECK_RUNTIME(H5Awrite(a, H5T_NATIVE_DOUBLE, &value) >= 0, "{}: cannot write attribute '{}'", file_name(obj),
                        name);
}

std::string read_attr_string(hid_t obj, const std::string& name) {
  Id a = open_attr(obj, name);
  Id type(H5Aget_type(a));
  FACETEX_CHECK_DATA(H5Tget_class(type) == H5T_STRING, "{}: attribute '{}' is not a string", file_name(obj), name);
  if (H5Tis_variable_str(type) > 0) {
    Id mem = vlen_utf8_type();
    char* p = nullptr;
    FACETEX_CHECK_DATA(H5Aread(a, mem, &p) >= 0, "{}: cannot read attribute '{}': {}", file_name(obj), name, reason());
    std::string s = p ? p : "";
    Id space(H5Aget_space(a));
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, &p);
    return s;
  }
  size_t n = H5Tget_size(type);
  std::string s(n, '\0');
  FACETEX_CHECK_DATA(H5Aread(a, type, s.data()) >= 0, "{}: cannot read attribute '{}': {}", file_name(obj), name,
                     reason());
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

int64_t read_attr_int(hid_t obj, const std::string& name) { return read_attr_scalar<int64_t>(obj, name); }
double read_attr_double(hid_t obj, const std::string& name) { return read_attr_scalar<double>(obj, name); }

namespace {

// A string dataset's CRC-32: every string followed by a NUL, in order (`zlib.crc32(b"".join(k.encode() + b"\0" for
// k in keys))`), so that ["ab", "c"] and ["a", "bc"] differ.
uint32_t strings_crc(const std::vector<std::string>& values) {
  uint32_t crc = 0;
  const char nul = '\0';
  for (const std::string& v : values) {
    crc = crc32(v.data(), v.size(), crc);
    crc = crc32(&nul, 1, crc);
  }
  return crc;
}

}  // namespace

template <typename T>
void write_dataset(hid_t loc, const std::string& name, const T* data, const std::vector<hsize_t>& dims,
                   const Layout& layout) {
  Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!layout.chunk.empty()) {
    H5Pset_chunk(dcpl, static_cast<int>(layout.chunk.size()), layout.chunk.data());
    if (layout.deflate > 0) H5Pset_deflate(dcpl, static_cast<unsigned>(layout.deflate));
  }
  Id d(H5Dcreate2(loc, name.c_str(), native_type<T>(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  FACETEX_CHECK_RUNTIME(d.valid(), "{}: cannot create dataset /{}: {}", file_name(loc), name, reason());
  hsize_t n = 1;
  for (auto v : dims) n *= v;
  if (n == 0) return;  // an empty dataset has nothing to write (and `data` may be null)
  FACETEX_CHECK_RUNTIME(H5Dwrite(d, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
                        "{}: cannot write dataset /{}: {}", file_name(loc), name, reason());
  write_attr(d, kCrc32Attr, int64_t{crc32(data, n * sizeof(T))});
}

template <typename T>
std::vector<T> read_dataset(hid_t loc, const std::string& name, std::vector<hsize_t>* dims) {
  Id d = open_dataset(loc, name);
  auto s = shape(d);
  size_t n = 1;
  for (auto v : s) n *= v;
  std::vector<T> out(n);
  if (n > 0) {
    FACETEX_CHECK_DATA(H5Dread(d, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0,
                       "{}: cannot read dataset /{}: {}", file_name(loc), name, reason());
  }
  if (has_attr(d, kCrc32Attr)) {
    Id file_type(H5Dget_type(d));
    if (H5Tequal(file_type, native_type<T>()) > 0) {  // the bytes the writer's CRC covered
      FACETEX_CHECK_DATA(static_cast<uint32_t>(read_attr_int(d, kCrc32Attr)) == crc32(out.data(), n * sizeof(T)),
                         "{}: /{}: the stored values do not match their CRC-32 (the file is damaged)", file_name(loc),
                         name);
    }
  }
  if (dims) *dims = s;
  return out;
}

namespace {

// The CRC-32 of a dataset's values in its native memory type (what write_dataset's CRC covers; string datasets have
// theirs from strings_crc).
uint32_t stored_values_crc(hid_t d) {
  Id file_type(H5Dget_type(d));
  Id memory_type(H5Tget_native_type(file_type, H5T_DIR_ASCEND));
  Id space(H5Dget_space(d));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<unsigned char> bytes(static_cast<size_t>(std::max<hssize_t>(n, 0)) * H5Tget_size(memory_type));
  if (!bytes.empty()) {
    FACETEX_CHECK_DATA(H5Dread(d, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) >= 0,
                       "{}: cannot read a dataset: {}", file_name(d), reason());
  }
  return crc32(bytes.data(), bytes.size());
}

void collect_mismatches(hid_t group, const std::string& path, std::vector<std::string>& out) {
  for (const std::string& name : child_names(group)) {
    Id object(H5Oopen(group, name.c_str(), H5P_DEFAULT));
    FACETEX_CHECK_DATA(object.valid(), "{}: cannot open {}/{}: {}", file_name(group), path, name, reason());
    const H5I_type_t type = H5Iget_type(object);
    if (type == H5I_GROUP) {
      collect_mismatches(object, path + "/" + name, out);
    } else if (type == H5I_DATASET && has_attr(object, kCrc32Attr)) {
      Id file_type(H5Dget_type(object));
      if (H5Tget_class(file_type) == H5T_STRING) {
        try {
          read_strings(group, name);  // checks the strings' CRC
        } catch (const DataError&) {
          out.push_back(path + "/" + name);
        }
      } else if (static_cast<uint32_t>(read_attr_int(object, kCrc32Attr)) != stored_values_crc(object)) {
        out.push_back(path + "/" + name);
      }
    }
  }
}

}  // namespace

std::vector<std::string> checksum_mismatches(hid_t loc) {
  std::vector<std::string> out;
  collect_mismatches(loc, "", out);
  return out;
}

template <typename T>
void read_slab(hid_t dataset, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count, T* out) {
  Id file_space(H5Dget_space(dataset));
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  Id mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  FACETEX_CHECK_DATA(H5Dread(dataset, native_type<T>(), mem_space, file_space, H5P_DEFAULT, out) >= 0,
                     "{}: cannot read from dataset: {}", file_name(dataset), reason());
}

#define FACETEX_H5_INSTANTIATE(T)                                                                          \
  template void write_dataset<T>(hid_t, const std::string&, const T*, const std::vector<hsize_t>&,          \
                                 const Layout&);                                                            \
  template std::vector<T> read_dataset<T>(hid_t, const std::string&, std::vector<hsize_t>*);                \
  template void read_slab<T>(hid_t, const std::vector<hsize_t>&, const std::vector<hsize_t>&, T*);
FACETEX_H5_INSTANTIATE(uint8_t)
FACETEX_H5_INSTANTIATE(int8_t)
FACETEX_H5_INSTANTIATE(int32_t)
FACETEX_H5_INSTANTIATE(uint32_t)
FACETEX_H5_INSTANTIATE(int64_t)
FACETEX_H5_INSTANTIATE(uint64_t)
FACETEX_H5_INSTANTIATE(float)
FACETEX_H5_INSTANTIATE(double)
#undef FACETEX_H5_INSTANTIATE

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values) {
  Id type = vlen_utf8_type();
  hsize_t n = values.size();
  Id space(H5Screate_simple(1, &n, nullptr));
  Id d(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  FACETEX_CHECK_RUNTIME(d.valid(), "{}: cannot create dataset /{}: {}", file_name(loc), name, reason());
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (n > 0) {
    FACETEX_CHECK_RUNTIME(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) >= 0,
                          "{}: cannot write dataset /{}: {}", file_name(loc), name, reason());
  }
  write_attr(d, kCrc32Attr, int64_t{strings_crc(values)});
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name) {
  Id d = open_dataset(loc, name);
  auto s = shape(d);
  FACETEX_CHECK_DATA(s.size() == 1, "{}: dataset /{} must be 1-D", file_name(loc), name);
  Id file_type(H5Dget_type(d));
  FACETEX_CHECK_DATA(H5Tget_class(file_type) == H5T_STRING, "{}: dataset /{} does not hold strings", file_name(loc),
                     name);
  std::vector<std::string> out(s[0]);
  if (s[0] == 0) return out;
  if (H5Tis_variable_str(file_type) > 0) {
    Id type = vlen_utf8_type();
    std::vector<char*> ptrs(s[0], nullptr);
    FACETEX_CHECK_DATA(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) >= 0,
                       "{}: cannot read dataset /{}: {}", file_name(loc), name, reason());
    for (size_t i = 0; i < ptrs.size(); ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    Id space(H5Dget_space(d));
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data());
  } else {
    size_t width = H5Tget_size(file_type);
    std::vector<char> buf(width * s[0]);
    FACETEX_CHECK_DATA(H5Dread(d, file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0,
                       "{}: cannot read dataset /{}: {}", file_name(loc), name, reason());
    for (size_t i = 0; i < s[0]; ++i) {
      std::string v(buf.data() + i * width, width);
      while (!v.empty() && v.back() == '\0') v.pop_back();
      out[i] = v;
    }
  }
  if (has_attr(d, kCrc32Attr)) {
    FACETEX_CHECK_DATA(static_cast<uint32_t>(read_attr_int(d, kCrc32Attr)) == strings_crc(out),
                       "{}: /{}: the stored strings do not match their CRC-32 (the file is damaged)", file_name(loc),
                       name);
  }
  return out;
}

}  // namespace facetex::h5
