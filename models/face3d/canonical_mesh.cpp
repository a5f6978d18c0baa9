#include "models/face3d/canonical_mesh.h"

#include <ATen/ATen.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "core/atomic_file.h"
#include "core/error.h"

namespace facetex::models::face3d {
namespace {

constexpr int64_t kVertices = 468;
constexpr int64_t kTriangles = 898;

// Just enough of the protobuf wire format (varints, length-delimited fields, fixed32/64 skips) to walk
// GeometryPipelineMetadata -> Mesh3d. Every read is bounds-checked; a malformed file is a DataError naming it.
class WireReader {
 public:
  WireReader(std::string_view bytes, const std::string& context) : p_(bytes), context_(context) {}
  bool done() const { return pos_ >= p_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      FACETEX_CHECK_DATA(pos_ < p_.size(), "{}: truncated varint at byte {}", context_, pos_);
      const auto b = static_cast<uint8_t>(p_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    throw DataError(fmt::format("{}: varint longer than 10 bytes at byte {}", context_, pos_));
  }
  std::string_view bytes(uint64_t n) {
    FACETEX_CHECK_DATA(n <= p_.size() - pos_, "{}: field of {} bytes at byte {} runs past the end ({} bytes)",
                       context_, n, pos_, p_.size());
    auto out = p_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  // Skips the value of a field with this wire type.
  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1: bytes(8); break;
      case 2: bytes(varint()); break;
      case 5: bytes(4); break;
      default: throw DataError(fmt::format("{}: unsupported protobuf wire type {} at byte {}", context_, wire_type, pos_));
    }
  }

 private:
  std::string_view p_;
  size_t pos_ = 0;
  const std::string& context_;
};

struct Mesh3dFields {
  std::vector<float> vertex_buffer;
  std::vector<int64_t> index_buffer;
};

// Mesh3d: 1 vertex_type, 2 primitive_type, 3 vertex_buffer (packed float), 4 index_buffer (packed uint32).
Mesh3dFields parse_mesh3d(std::string_view msg, const std::string& context) {
  Mesh3dFields out;
  WireReader r(msg, context);
  while (!r.done()) {
    const uint64_t key = r.varint();
    const auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 3 && wire == 2) {  // packed floats
      const auto data = r.bytes(r.varint());
      FACETEX_CHECK_DATA(data.size() % 4 == 0, "{}: vertex_buffer of {} bytes is not a float array", context,
                         data.size());
      const size_t old = out.vertex_buffer.size();
      out.vertex_buffer.resize(old + data.size() / 4);
      std::memcpy(out.vertex_buffer.data() + old, data.data(), data.size());  // little-endian IEEE, as on x86/ARM
    } else if (field == 3 && wire == 5) {  // unpacked float
      const auto data = r.bytes(4);
      float f;
      std::memcpy(&f, data.data(), 4);
      out.vertex_buffer.push_back(f);
    } else if (field == 4 && wire == 2) {  // packed varints
      WireReader packed(r.bytes(r.varint()), context);
      while (!packed.done()) out.index_buffer.push_back(static_cast<int64_t>(packed.varint()));
    } else if (field == 4 && wire == 0) {
      out.index_buffer.push_back(static_cast<int64_t>(r.varint()));
    } else {
      r.skip(wire);
    }
  }
  return out;
}

}  // namespace

CanonicalMesh load_canonical_mesh(const std::filesystem::path& binarypb) {
  const std::string context = binarypb.string();
  const std::string bytes = read_file(binarypb);
  WireReader top(bytes, context);
  bool found = false;
  Mesh3dFields mesh;
  while (!top.done()) {
    const uint64_t key = top.varint();
    const auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire == 2) {
      mesh = parse_mesh3d(top.bytes(top.varint()), context);
      found = true;
    } else {
      top.skip(wire);
    }
  }
  FACETEX_CHECK_DATA(found, "{}: no Mesh3d (field 1) in the geometry pipeline metadata", context);
  FACETEX_CHECK_DATA(mesh.vertex_buffer.size() == static_cast<size_t>(kVertices * 5),
                     "{}: vertex_buffer has {} floats, expected {} (468 vertices x (x y z u v))", context,
                     mesh.vertex_buffer.size(), kVertices * 5);
  FACETEX_CHECK_DATA(mesh.index_buffer.size() == static_cast<size_t>(kTriangles * 3),
                     "{}: index_buffer has {} indices, expected {} (898 triangles)", context,
                     mesh.index_buffer.size(), kTriangles * 3);

  CanonicalMesh out;
  out.vertices = at::empty({kVertices, 3}, at::kFloat);
  out.uv = at::empty({kVertices, 2}, at::kFloat);
  out.triangles = at::empty({kTriangles, 3}, at::kLong);
  auto v = out.vertices.accessor<float, 2>();
  auto uv = out.uv.accessor<float, 2>();
  for (int64_t i = 0; i < kVertices; ++i) {
    const float* x = mesh.vertex_buffer.data() + 5 * i;
    for (int k = 0; k < 3; ++k) {
      FACETEX_CHECK_DATA(std::isfinite(x[k]), "{}: vertex {} has a non-finite coordinate", context, i);
      v[i][k] = x[k];
    }
    FACETEX_CHECK_DATA(x[3] >= 0.f && x[3] <= 1.f && x[4] >= 0.f && x[4] <= 1.f,
                       "{}: vertex {} has UV ({}, {}) outside [0, 1]", context, i, x[3], x[4]);
    uv[i][0] = x[3];
    uv[i][1] = 1.f - x[4];  // the file's v is image-style (0 = forehead); OBJ's v points up
  }
  int64_t* t = out.triangles.data_ptr<int64_t>();
  for (size_t i = 0; i < mesh.index_buffer.size(); ++i) {
    FACETEX_CHECK_DATA(mesh.index_buffer[i] < kVertices, "{}: triangle {} references vertex {} (of {})", context,
                       i / 3, mesh.index_buffer[i], kVertices);
    t[i] = mesh.index_buffer[i];
  }
  return out;
}

std::vector<int64_t> load_dlib68_to_mesh(const std::filesystem::path& facemeshcoords_ts) {
  const std::string context = facemeshcoords_ts.string();
  const std::string text = read_file(facemeshcoords_ts);
  // export const VTX68: number[] = [ /* cont */ 127, 234, ... ];  (comments between the numbers)
  const size_t name = text.find("VTX68");
  FACETEX_CHECK_DATA(name != std::string::npos, "{}: no VTX68 array", context);
  const size_t open = text.find('[', text.find('=', name));
  FACETEX_CHECK_DATA(open != std::string::npos, "{}: VTX68 has no '[' after '='", context);
  std::vector<int64_t> out;
  size_t i = open + 1;
  for (;;) {
    FACETEX_CHECK_DATA(i < text.size(), "{}: VTX68 is not closed with ']'", context);
    const char c = text[i];
    if (c == ']') break;
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      const size_t end = text.find("*/", i + 2);
      FACETEX_CHECK_DATA(end != std::string::npos, "{}: unterminated comment in VTX68", context);
      i = end + 2;
    } else if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      i = text.find('\n', i);
      FACETEX_CHECK_DATA(i != std::string::npos, "{}: VTX68 is not closed with ']'", context);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      int64_t value = 0;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        value = value * 10 + (text[i++] - '0');
        FACETEX_CHECK_DATA(value < kVertices, "{}: VTX68 entry {} is not a vertex of the 468-vertex mesh", context,
                           out.size());
      }
      out.push_back(value);
    } else if (std::isspace(static_cast<unsigned char>(c)) || c == ',') {
      ++i;
    } else {
      throw DataError(fmt::format("{}: unexpected character '{}' in VTX68 (entry {})", context, c, out.size()));
    }
  }
  FACETEX_CHECK_DATA(out.size() == 68, "{}: VTX68 has {} entries, expected 68", context, out.size());
  return out;
}

}  // namespace facetex::models::face3d
