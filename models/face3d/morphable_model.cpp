#include "models/face3d/morphable_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <matio.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/npy.h"

namespace fs = std::filesystem;

namespace facetex::models::face3d {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .npy reader/writer assumes a little-endian host");

// ---------------------------------------------------------------------------------------------------------------
// MATLAB v5 .mat via matio
// ---------------------------------------------------------------------------------------------------------------

// matio prints its diagnostics to stderr by default; route them through the "models" logger instead (the reason
// for a failure is reported by our own DataError, so they are debug detail).
void route_matio_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    Mat_LogInitFunc("facetex", [](int level, char* message) {
      if (level & (MATIO_LOG_LEVEL_ERROR | MATIO_LOG_LEVEL_CRITICAL)) {
        log::get("models").debug("matio: {}", message ? message : "");
      }
    });
  });
}

struct MatCloser {
  void operator()(mat_t* m) const { Mat_Close(m); }
};
struct VarFreer {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};
using MatPtr = std::unique_ptr<mat_t, MatCloser>;
using VarPtr = std::unique_ptr<matvar_t, VarFreer>;

// One 2-D numeric MATLAB variable as a row-major tensor of the file's own element type.
// MATLAB stores column-major, so the buffer of an (r, c) matrix is the row-major buffer of its (c, r) transpose.
at::Tensor read_matrix(mat_t* mat, const fs::path& file, const char* field) {
  VarPtr var(Mat_VarRead(mat, field));
  FACETEX_CHECK_DATA(var != nullptr, "{}: field '{}' is missing", file.string(), field);
  FACETEX_CHECK_DATA(!var->isComplex && !var->isLogical, "{}: field '{}' must be a real numeric matrix",
                     file.string(), field);
  FACETEX_CHECK_DATA(var->rank == 2, "{}: field '{}' has {} dimensions; expected a 2-D matrix", file.string(), field,
                     var->rank);
  const int64_t rows = static_cast<int64_t>(var->dims[0]), cols = static_cast<int64_t>(var->dims[1]);
  at::ScalarType type;
  switch (var->class_type) {
    case MAT_C_DOUBLE: type = at::kDouble; break;
    case MAT_C_SINGLE: type = at::kFloat; break;
    case MAT_C_INT8: type = at::kChar; break;
    case MAT_C_UINT8: type = at::kByte; break;
    case MAT_C_INT16: type = at::kShort; break;
    case MAT_C_INT32: type = at::kInt; break;
    case MAT_C_INT64: type = at::kLong; break;
    // Unsigned 16/32/64-bit have no ATen type in every LibTorch version: widen them by hand below.
    case MAT_C_UINT16:
    case MAT_C_UINT32:
    case MAT_C_UINT64: type = at::kLong; break;
    default:
      throw DataError(fmt::format("{}: field '{}' is not a numeric matrix (MATLAB class {})", file.string(), field,
                                  static_cast<int>(var->class_type)));
  }
  at::Tensor t = at::empty({cols, rows}, type);  // column-major view of the (rows, cols) matrix
  const int64_t n = rows * cols;
  if (n > 0) {
    FACETEX_CHECK_DATA(var->data != nullptr, "{}: field '{}' has no data", file.string(), field);
    const size_t elem = Mat_SizeOfClass(var->class_type);
    FACETEX_CHECK_DATA(var->nbytes >= static_cast<size_t>(n) * elem, "{}: field '{}' is truncated", file.string(),
                       field);
    if (var->class_type == MAT_C_UINT16 || var->class_type == MAT_C_UINT32 || var->class_type == MAT_C_UINT64) {
      int64_t* out = t.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = 0;
        if (var->class_type == MAT_C_UINT16) v = static_cast<const uint16_t*>(var->data)[i];
        if (var->class_type == MAT_C_UINT32) v = static_cast<const uint32_t*>(var->data)[i];
        if (var->class_type == MAT_C_UINT64) v = static_cast<const uint64_t*>(var->data)[i];
        FACETEX_CHECK_DATA(v <= static_cast<uint64_t>(INT64_MAX), "{}: field '{}' holds an out-of-range value",
                           file.string(), field);
        out[i] = static_cast<int64_t>(v);
      }
    } else {
      std::memcpy(t.data_ptr(), var->data, static_cast<size_t>(n) * elem);
    }
  }
  return t.t().contiguous();
}

std::string shape_text(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + ")";
}

// Real-valued fields: double or single in the file, float32 in memory, all finite.
at::Tensor read_real(mat_t* mat, const fs::path& file, const char* field) {
  at::Tensor t = read_matrix(mat, file, field);
  FACETEX_CHECK_DATA(t.scalar_type() == at::kDouble || t.scalar_type() == at::kFloat,
                     "{}: field '{}' must be double or single (got an integer class)", file.string(), field);
  FACETEX_CHECK_DATA(at::isfinite(t).all().item<bool>(), "{}: field '{}' holds NaN or Inf", file.string(), field);
  return t.to(at::kFloat);
}

// A row or column vector (scipy's savemat writes 1-D arrays as (1, n); MATLAB users often have (n, 1)).
at::Tensor as_vector(const at::Tensor& t, const fs::path& file, const char* field, const char* expected) {
  FACETEX_CHECK_DATA(t.size(0) == 1 || t.size(1) == 1, "{}: field '{}' has shape {}; expected {}", file.string(),
                     field, shape_text(t), expected);
  return t.reshape({-1});
}

// 1-based index fields: any numeric class, integral values in [1, upper]; returned 0-based int64.
at::Tensor to_zero_based(const at::Tensor& t, const fs::path& file, const char* field, int64_t upper,
                         const char* upper_name) {
  at::Tensor v = t;
  if (at::isFloatingType(t.scalar_type())) {
    at::Tensor d = t.to(at::kDouble);
    FACETEX_CHECK_DATA(at::isfinite(d).all().item<bool>() && at::equal(d, d.round()),
                       "{}: field '{}' holds non-integer indices", file.string(), field);
    v = d;
  }
  v = v.to(at::kLong);
  if (v.numel() > 0) {
    const int64_t lo = v.min().item<int64_t>(), hi = v.max().item<int64_t>();
    FACETEX_CHECK_DATA(lo >= 1 && hi <= upper,
                       "{}: field '{}' holds index {} outside the 1-based range [1, {}] ({} = {})", file.string(),
                       field, lo < 1 ? lo : hi, upper, upper_name, upper);
  }
  return v - 1;
}

void write_matrix(mat_t* mat, const fs::path& file, const char* field, const at::Tensor& matrix) {
  FACETEX_CHECK_RUNTIME(matrix.dim() == 2, "save_morphable_model: field '{}' must be 2-D", field);
  const bool is_int = matrix.scalar_type() == at::kInt;
  // Column-major buffer of the (rows, cols) matrix = row-major buffer of its transpose.
  at::Tensor buffer = matrix.t().contiguous();
  std::array<size_t, 2> dims = {static_cast<size_t>(matrix.size(0)), static_cast<size_t>(matrix.size(1))};
  VarPtr var(Mat_VarCreate(field, is_int ? MAT_C_INT32 : MAT_C_SINGLE, is_int ? MAT_T_INT32 : MAT_T_SINGLE, 2,
                           dims.data(), buffer.data_ptr(), MAT_F_DONT_COPY_DATA));
  FACETEX_CHECK_RUNTIME(var != nullptr, "{}: cannot create field '{}'", file.string(), field);
  FACETEX_CHECK_RUNTIME(Mat_VarWrite(mat, var.get(), MAT_COMPRESSION_ZLIB) == 0, "{}: cannot write field '{}'",
                        file.string(), field);
}

// ---------------------------------------------------------------------------------------------------------------
// NumPy .npy (format versions 1-3), strictly what the per-vertex UV file holds: float32/float64 little-endian,
// C order, shape (N, 2).
// ---------------------------------------------------------------------------------------------------------------

constexpr std::string_view kNpyMagic = "\x93NUMPY";

// A tiny parser for the header dict literal, e.g. "{'descr': '<f4', 'fortran_order': False, 'shape': (10, 2), }".
class NpyHeaderParser {
 public:
  NpyHeaderParser(std::string_view text, const fs::path& file) : s_(text), file_(file) {}

  void parse(std::string* descr, bool* fortran_order, std::vector<int64_t>* shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr" && !have_descr) {
        *descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order" && !have_order) {
        *fortran_order = boolean();
        have_order = true;
      } else if (key == "shape" && !have_shape) {
        *shape = tuple();
        have_shape = true;
      } else {
        fail(fmt::format("unexpected or repeated key '{}'", key));
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    expect('}');
    skip_space();
    if (pos_ != s_.size()) fail("trailing characters after the header dict");
    if (!have_descr || !have_order || !have_shape) fail("header lacks descr, fortran_order or shape");
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw DataError(fmt::format("{}: malformed .npy header ({}): {}", file_.string(), why, std::string(s_)));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(fmt::format("expected '{}'", c));
    ++pos_;
  }
  std::string quoted() {
    skip_space();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> out;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected a dimension");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (INT64_MAX - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[pos_++] - '0');
      }
      out.push_back(v);
      skip_space();
      if (peek() == ',') ++pos_;
      else if (peek() != ')') fail("expected ',' or ')'");
    }
    expect(')');
    return out;
  }

  std::string_view s_;
  const fs::path& file_;
  size_t pos_ = 0;
};

at::Tensor read_uv_npy(const fs::path& file) {
  const std::string bytes = read_file(file);
  FACETEX_CHECK_DATA(bytes.size() >= 10 && std::string_view(bytes).substr(0, 6) == kNpyMagic,
                     "{}: not a .npy file (bad magic)", file.string());
  const int major = static_cast<unsigned char>(bytes[6]);
  FACETEX_CHECK_DATA(major >= 1 && major <= 3, "{}: unsupported .npy format version {}", file.string(), major);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else {
    FACETEX_CHECK_DATA(bytes.size() >= 12, "{}: truncated .npy header", file.string());
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  }
  FACETEX_CHECK_DATA(bytes.size() >= header_start + header_len, "{}: truncated .npy header", file.string());
  std::string descr;
  bool fortran_order = true;
  std::vector<int64_t> shape;
  NpyHeaderParser(std::string_view(bytes).substr(header_start, header_len), file)
      .parse(&descr, &fortran_order, &shape);
  FACETEX_CHECK_DATA(descr == "<f4" || descr == "<f8",
                     "{}: UV array has dtype '{}'; expected little-endian float32 '<f4' or float64 '<f8'", file.string(),
                     descr);
  FACETEX_CHECK_DATA(!fortran_order, "{}: UV array is in Fortran order; expected C order", file.string());
  FACETEX_CHECK_DATA(shape.size() == 2 && shape[1] == 2 && shape[0] > 0,
                     "{}: UV array has shape ({}); expected (N, 2)", file.string(), fmt::join(shape, ", "));
  const size_t itemsize = descr == "<f4" ? 4 : 8;
  const size_t payload = static_cast<size_t>(shape[0]) * 2 * itemsize;
  FACETEX_CHECK_DATA(bytes.size() - header_start - header_len == payload,
                     "{}: UV array data is {} bytes; shape ({}, 2) {} needs {}", file.string(),
                     bytes.size() - header_start - header_len, shape[0], descr, payload);
  at::Tensor t = at::empty({shape[0], 2}, itemsize == 4 ? at::kFloat : at::kDouble);
  std::memcpy(t.data_ptr(), bytes.data() + header_start + header_len, payload);
  FACETEX_CHECK_DATA(at::isfinite(t).all().item<bool>(), "{}: UV array holds NaN or Inf", file.string());
  return t.to(at::kFloat);
}

std::string npy_bytes(const at::Tensor& uv) {
  const at::Tensor t = uv.to(at::kCPU, at::kFloat).contiguous();
  return npy_float32(t.data_ptr<float>(), {t.size(0), t.size(1)});
}

// ---------------------------------------------------------------------------------------------------------------
// The synthetic face
// ---------------------------------------------------------------------------------------------------------------

// Extent of the synthetic height field, in BFM-front units (decimetres: a face is ~1.6 wide and ~2 tall, with the
// nose tip ~0.8 in front of the cheeks' edge); x right, y up, z towards the camera.
constexpr double kPi = 3.14159265358979323846;
constexpr double kHalfWidth = 0.8, kHalfHeight = 1.0;

double gauss2(double x, double y, double cx, double cy, double sx, double sy) {
  const double dx = (x - cx) / sx, dy = (y - cy) / sy;
  return std::exp(-0.5 * (dx * dx + dy * dy));
}

// A smooth face-like relief: an elongated dome, a nose ridge ending in a tip, eye sockets, brow ridges, lips.
double face_height(double x, double y) {
  double z = 0.6 * gauss2(x, y, 0.0, 0.0, 0.55, 0.8);
  z += 0.22 * gauss2(x, y, 0.0, -0.08, 0.08, 0.14);   // nose, tip near y = -0.06
  z += 0.06 * gauss2(x, y, 0.0, 0.18, 0.06, 0.15);    // nose bridge
  z -= 0.07 * gauss2(x, y, -0.30, 0.25, 0.09, 0.07);  // eye sockets
  z -= 0.07 * gauss2(x, y, 0.30, 0.25, 0.09, 0.07);
  z += 0.03 * gauss2(x, y, -0.33, 0.42, 0.14, 0.04);  // brow ridges
  z += 0.03 * gauss2(x, y, 0.33, 0.42, 0.14, 0.04);
  z += 0.04 * gauss2(x, y, 0.0, -0.45, 0.20, 0.08);   // lips
  return z;
}

// Albedo in BFM's 0..255 range: skin with darker brows and eyes and redder lips.
std::array<double, 3> face_albedo(double x, double y) {
  std::array<double, 3> c = {205.0, 160.0, 135.0};
  const double lips = gauss2(x, y, 0.0, -0.45, 0.20, 0.06);
  const double eyes = gauss2(x, y, -0.30, 0.25, 0.09, 0.04) + gauss2(x, y, 0.30, 0.25, 0.09, 0.04);
  const double brows = gauss2(x, y, -0.33, 0.47, 0.17, 0.03) + gauss2(x, y, 0.33, 0.47, 0.17, 0.03);
  const double d[3] = {20.0 * lips - 120.0 * eyes - 110.0 * brows, -50.0 * lips - 100.0 * eyes - 90.0 * brows,
                       -35.0 * lips - 80.0 * eyes - 80.0 * brows};
  for (int k = 0; k < 3; ++k) c[k] = std::clamp(c[k] + d[k], 0.0, 255.0);
  return c;
}

// The 68 iBUG/dlib landmark positions (x right as seen in the image, y up) on the synthetic face: jaw 0-16 from
// image-left to image-right, brows 17-26, nose bridge 27-30 (30 = tip), nostrils 31-35, eyes 36-47 (outer corner,
// upper lid, inner corner, lower lid), outer lips 48-59, inner lips 60-67.
std::vector<std::array<double, 2>> landmark_positions() {
  std::vector<std::array<double, 2>> p;
  for (int k = 0; k <= 16; ++k) {
    const double phi = kPi * (1.0 + k / 16.0);
    p.push_back({0.70 * std::cos(phi), 0.20 + 1.05 * std::sin(phi)});
  }
  for (int side = -1; side <= 1; side += 2) {  // brows: image-left brow outer->inner, then right brow inner->outer
    for (int k = 0; k < 5; ++k) {
      const double f = k / 4.0;
      const double x = side < 0 ? -0.55 + 0.43 * f : 0.12 + 0.43 * f;
      p.push_back({x, 0.45 + 0.06 * std::sin(kPi * f)});
    }
  }
  for (double y : {0.30, 0.18, 0.06, -0.06}) p.push_back({0.0, y});
  for (double x : {-0.12, -0.06, 0.0, 0.06, 0.12}) p.push_back({x, -0.16});
  // Both eyes run from their image-left corner over the upper lid to the image-right corner and back along the
  // lower lid (left eye: 36 outer .. 39 inner; right eye: 42 inner .. 45 outer).
  const double eye[6][2] = {{-0.12, 0.0}, {-0.04, 0.04}, {0.04, 0.04}, {0.12, 0.0}, {0.04, -0.04}, {-0.04, -0.04}};
  for (double cx : {-0.30, 0.30}) {
    for (const auto& e : eye) p.push_back({cx + e[0], 0.25 + e[1]});
  }
  const double outer[12][2] = {{-0.25, -0.45}, {-0.15, -0.39}, {-0.06, -0.36}, {0.0, -0.37}, {0.06, -0.36},
                               {0.15, -0.39},  {0.25, -0.45},  {0.15, -0.52},  {0.06, -0.55}, {0.0, -0.56},
                               {-0.06, -0.55}, {-0.15, -0.52}};
  for (const auto& q : outer) p.push_back({q[0], q[1]});
  const double inner[8][2] = {{-0.20, -0.45}, {-0.07, -0.42}, {0.0, -0.42}, {0.07, -0.42},
                              {0.20, -0.45},  {0.07, -0.48},  {0.0, -0.48}, {-0.07, -0.48}};
  for (const auto& q : inner) p.push_back({q[0], q[1]});
  return p;
}

// `count` smooth random fields over the grid, one column each, orthonormalised by QR and scaled so that each
// entry of a column has root-mean-square `scale`. Smooth because each column is a random combination of
// low-frequency cosine modes (amplitude falling with frequency) of the three coordinates; QR keeps the columns in
// that smooth span.
at::Tensor smooth_orthogonal_basis(int grid, int count, int channels, double scale, at::Generator& gen) {
  const int64_t n = static_cast<int64_t>(grid) * grid;
  int modes = 8;
  while (channels * modes * modes < count + 8) ++modes;
  FACETEX_CHECK_USAGE(modes <= grid && count <= channels * n,
                      "synthetic model: {} basis vectors need a grid of at least {} (got {})", count, modes, grid);
  at::Tensor lin = at::linspace(0.0, 1.0, grid, at::kDouble);
  // Mode m along an axis: cos(pi * m * s), s in [0, 1].
  at::Tensor freq = at::arange(modes, at::kDouble);
  at::Tensor ax = at::cos(kPi * freq.unsqueeze(0) * lin.unsqueeze(1));  // [grid, modes]
  // 2-D modes over the grid, vertex index = row * grid + col; [n, modes^2].
  at::Tensor modes2d = (ax.unsqueeze(1).unsqueeze(3) * ax.unsqueeze(0).unsqueeze(2)).reshape({n, modes * modes});
  at::Tensor decay = 1.0 / (1.0 + (freq.unsqueeze(1).square() + freq.unsqueeze(0).square()).reshape({-1}));
  at::Tensor columns = at::zeros({n, channels, count}, at::kDouble);
  for (int c = 0; c < channels; ++c) {
    at::Tensor w = at::randn({modes * modes, count}, gen, at::kDouble) * decay.unsqueeze(1);
    columns.select(1, c).copy_(at::matmul(modes2d, w));
  }
  at::Tensor q = std::get<0>(at::linalg_qr(columns.reshape({n * channels, count}), "reduced"));
  return (q * (scale * std::sqrt(static_cast<double>(n * channels)))).to(at::kFloat);
}

}  // namespace

std::pair<fs::path, fs::path> split_model_files(const std::string& spec, const std::string& option) {
  auto colon = spec.rfind(':');
  for (auto c = colon; c != std::string::npos && c > 0; c = spec.rfind(':', c - 1)) {
    if (fs::is_regular_file(spec.substr(0, c))) {
      colon = c;
      break;
    }
  }
  FACETEX_CHECK_USAGE(colon != std::string::npos && colon > 0 && colon + 1 < spec.size(),
                      "{} must be MAT:UV (a .mat face model and its .npy UVs), got '{}'", option, spec);
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

MorphableModel load_morphable_model(const fs::path& mat_file, const fs::path& uv_npy) {
  route_matio_log();
  FACETEX_CHECK_DATA(fs::is_regular_file(mat_file), "{}: face model file does not exist", mat_file.string());
  MatPtr mat(Mat_Open(mat_file.c_str(), MAT_ACC_RDONLY));
  FACETEX_CHECK_DATA(mat != nullptr, "{}: not a readable MATLAB .mat file", mat_file.string());
  const fs::path& f = mat_file;

  MorphableModel m;
  at::Tensor mean_shape = as_vector(read_real(mat.get(), f, "meanshape"), f, "meanshape", "(1, 3N)");
  FACETEX_CHECK_DATA(mean_shape.numel() % 3 == 0 && mean_shape.numel() >= 9,
                     "{}: field 'meanshape' has {} values; expected 3N (N >= 3 vertices)", f.string(),
                     mean_shape.numel());
  const int64_t n = mean_shape.numel() / 3;
  m.mean_shape = mean_shape.reshape({n, 3}).contiguous();

  auto basis = [&](const char* field) {
    at::Tensor b = read_real(mat.get(), f, field);
    FACETEX_CHECK_DATA(b.size(0) == 3 * n && b.size(1) >= 1, "{}: field '{}' has shape {}; expected (3N, K) = ({}, K)",
                       f.string(), field, shape_text(b), 3 * n);
    return b;
  };
  m.id_base = basis("idBase");
  m.exp_base = basis("exBase");
  at::Tensor mean_tex = as_vector(read_real(mat.get(), f, "meantex"), f, "meantex", "(1, 3N)");
  FACETEX_CHECK_DATA(mean_tex.numel() == 3 * n, "{}: field 'meantex' has {} values; expected 3N = {}", f.string(),
                     mean_tex.numel(), 3 * n);
  m.mean_tex = mean_tex.reshape({n, 3}).contiguous();
  m.tex_base = basis("texBase");

  at::Tensor tri = read_matrix(mat.get(), f, "tri");
  FACETEX_CHECK_DATA(tri.size(1) == 3 && tri.size(0) >= 1, "{}: field 'tri' has shape {}; expected (F, 3)",
                     f.string(), shape_text(tri));
  m.triangles = to_zero_based(tri, f, "tri", n, "N vertices");
  const int64_t num_faces = m.triangles.size(0);

  at::Tensor point_buf = read_matrix(mat.get(), f, "point_buf");
  FACETEX_CHECK_DATA(point_buf.size(0) == n && point_buf.size(1) == 8,
                     "{}: field 'point_buf' has shape {}; expected (N, 8) = ({}, 8)", f.string(), shape_text(point_buf),
                     n);
  // Face ids per vertex; F+1 (1-based) is the padding id that points at an appended zero normal.
  m.point_buf = to_zero_based(point_buf, f, "point_buf", num_faces + 1, "F + 1 with F triangles");

  at::Tensor keypoints = as_vector(read_matrix(mat.get(), f, "keypoints"), f, "keypoints", "(1, 68)");
  FACETEX_CHECK_DATA(keypoints.numel() == 68, "{}: field 'keypoints' has {} values; expected 68", f.string(),
                     keypoints.numel());
  m.keypoints = to_zero_based(keypoints, f, "keypoints", n, "N vertices");

  m.uv = read_uv_npy(uv_npy);
  FACETEX_CHECK_DATA(m.uv.size(0) == n, "{}: UV array has {} rows but the face model {} has N = {} vertices",
                     uv_npy.string(), m.uv.size(0), f.string(), n);
  return m;
}

void save_morphable_model(const MorphableModel& model, const fs::path& mat_file, const fs::path& uv_npy) {
  route_matio_log();
  const int64_t n = model.num_vertices();
  const int64_t num_faces = model.num_triangles();
  FACETEX_CHECK_RUNTIME(model.mean_shape.sizes() == at::IntArrayRef({n, 3}) && model.mean_tex.sizes() == model.mean_shape.sizes() &&
                            model.id_base.size(0) == 3 * n && model.exp_base.size(0) == 3 * n &&
                            model.tex_base.size(0) == 3 * n && model.triangles.size(1) == 3 &&
                            model.point_buf.sizes() == at::IntArrayRef({n, 8}) && model.keypoints.numel() == 68 &&
                            model.uv.sizes() == at::IntArrayRef({n, 2}),
                        "save_morphable_model: inconsistent model (N = {}, F = {})", n, num_faces);
  auto real = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat); };
  // Indices go to the file 1-based as int32 (exact; scipy and MATLAB read them as integers).
  auto index = [](const at::Tensor& t) { return (t.detach().to(at::kCPU, at::kLong) + 1).to(at::kInt); };
  {
    AtomicFile file(mat_file);
    {
      MatPtr mat(Mat_CreateVer(file.temp_path().c_str(), "MATLAB 5.0 MAT-file, written by facetex (BFM-front layout)",
                               MAT_FT_MAT5));
      FACETEX_CHECK_RUNTIME(mat != nullptr, "{}: cannot create", file.temp_path().string());
      write_matrix(mat.get(), mat_file, "meanshape", real(model.mean_shape).reshape({1, 3 * n}));
      write_matrix(mat.get(), mat_file, "idBase", real(model.id_base));
      write_matrix(mat.get(), mat_file, "exBase", real(model.exp_base));
      write_matrix(mat.get(), mat_file, "meantex", real(model.mean_tex).reshape({1, 3 * n}));
      write_matrix(mat.get(), mat_file, "texBase", real(model.tex_base));
      write_matrix(mat.get(), mat_file, "tri", index(model.triangles));
      write_matrix(mat.get(), mat_file, "point_buf", index(model.point_buf));
      write_matrix(mat.get(), mat_file, "keypoints", index(model.keypoints).reshape({1, 68}));
    }  // Mat_Close flushes before the commit's fsync
    file.commit();
  }
  write_file_atomic(uv_npy, npy_bytes(model.uv));
}

MorphableModel make_synthetic_model(const SyntheticModelOptions& o) {
  FACETEX_CHECK_USAGE(o.grid >= 8, "synthetic model: grid must be at least 8 (got {})", o.grid);
  FACETEX_CHECK_USAGE(o.id_dims >= 1 && o.exp_dims >= 1 && o.tex_dims >= 1,
                      "synthetic model: basis sizes must be positive");
  FACETEX_CHECK_USAGE(o.basis_scale > 0, "synthetic model: basis_scale must be positive");
  const int g = o.grid;
  const int64_t n = static_cast<int64_t>(g) * g;
  MorphableModel m;

  // Vertex (row r, col c) = index r * g + c; row 0 is the top of the face (y = +kHalfHeight), col 0 the image-left.
  m.mean_shape = at::empty({n, 3}, at::kFloat);
  m.mean_tex = at::empty({n, 3}, at::kFloat);
  m.uv = at::empty({n, 2}, at::kFloat);
  auto shape = m.mean_shape.accessor<float, 2>();
  auto tex = m.mean_tex.accessor<float, 2>();
  auto uv = m.uv.accessor<float, 2>();
  for (int r = 0; r < g; ++r) {
    for (int c = 0; c < g; ++c) {
      const int64_t v = static_cast<int64_t>(r) * g + c;
      const double u = static_cast<double>(c) / (g - 1), w = 1.0 - static_cast<double>(r) / (g - 1);
      const double x = (2.0 * u - 1.0) * kHalfWidth, y = (2.0 * w - 1.0) * kHalfHeight;
      shape[v][0] = static_cast<float>(x);
      shape[v][1] = static_cast<float>(y);
      shape[v][2] = static_cast<float>(face_height(x, y));
      const auto albedo = face_albedo(x, y);
      for (int k = 0; k < 3; ++k) tex[v][k] = static_cast<float>(albedo[k]);
      // Planar UVs: the frontal projection normalised to [0, 1], v up.
      uv[v][0] = static_cast<float>(u);
      uv[v][1] = static_cast<float>(w);
    }
  }

  // Two triangles per grid cell, counter-clockwise seen from +z so that (v1-v2)x(v2-v3) points at the camera.
  std::vector<int64_t> tris;
  for (int r = 0; r + 1 < g; ++r) {
    for (int c = 0; c + 1 < g; ++c) {
      const int64_t a = static_cast<int64_t>(r) * g + c, b = a + 1, d = a + g, e = d + 1;  // a b / d e
      tris.insert(tris.end(), {a, d, b, b, d, e});
    }
  }
  const int64_t num_faces = static_cast<int64_t>(tris.size() / 3);
  m.triangles = at::tensor(tris, at::kLong).reshape({num_faces, 3});

  // point_buf: the faces around each vertex in face order, padded with F (the zero-normal slot).
  std::vector<std::vector<int64_t>> around(static_cast<size_t>(n));
  for (int64_t f = 0; f < num_faces; ++f) {
    for (int k = 0; k < 3; ++k) around[static_cast<size_t>(tris[static_cast<size_t>(3 * f + k)])].push_back(f);
  }
  m.point_buf = at::full({n, 8}, num_faces, at::kLong);
  auto pb = m.point_buf.accessor<int64_t, 2>();
  for (int64_t v = 0; v < n; ++v) {
    const auto& faces = around[static_cast<size_t>(v)];
    FACETEX_CHECK_RUNTIME(faces.size() <= 8, "synthetic model: vertex {} has {} faces (> 8)", v, faces.size());
    for (size_t k = 0; k < faces.size(); ++k) pb[v][static_cast<int64_t>(k)] = faces[k];
  }

  // Keypoints: the grid vertex nearest to each landmark's (x, y).
  const auto marks = landmark_positions();
  std::vector<int64_t> keypoints;
  for (const auto& p : marks) {
    const double u = (p[0] / kHalfWidth + 1.0) / 2.0, w = (p[1] / kHalfHeight + 1.0) / 2.0;
    const int c = std::clamp(static_cast<int>(std::lround(u * (g - 1))), 0, g - 1);
    const int r = std::clamp(static_cast<int>(std::lround((1.0 - w) * (g - 1))), 0, g - 1);
    keypoints.push_back(static_cast<int64_t>(r) * g + c);
  }
  m.keypoints = at::tensor(keypoints, at::kLong);

  // Bases: independent draws from one seeded generator, in a fixed order (identity, expression, texture).
  // Texture bases are in albedo units: a unit coefficient moves each colour channel by 255 * basis_scale (RMS).
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  m.id_base = smooth_orthogonal_basis(g, o.id_dims, 3, o.basis_scale, gen);
  m.exp_base = smooth_orthogonal_basis(g, o.exp_dims, 3, o.basis_scale, gen);
  m.tex_base = smooth_orthogonal_basis(g, o.tex_dims, 3, 255.0 * o.basis_scale, gen);
  return m;
}

}  // namespace facetex::models::face3d
