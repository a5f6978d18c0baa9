#include "core/crc32.h"

#ifdef FACETEX_HAVE_LIBDEFLATE
#include <libdeflate.h>
#else
#include <zlib.h>
#endif

#include <algorithm>

namespace facetex {

uint32_t crc32(const void* data, size_t size, uint32_t previous) {
  // Nothing to add keeps the running value. (libdeflate returns the *initial* value 0 for a NULL buffer, which an
  // empty std::vector's data() is: a stream's digest dropped to 0 at a rank's empty last batch.)
  if (size == 0) return previous;
#ifdef FACETEX_HAVE_LIBDEFLATE
  return libdeflate_crc32(previous, data, size);
#else
  // zlib takes uInt lengths: feed it in pieces below 4 GiB.
  const auto* p = static_cast<const unsigned char*>(data);
  uLong crc = previous;
  while (size > 0) {
    uInt n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
#endif
}

}  // namespace facetex
