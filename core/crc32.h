// CRC-32 with the zlib/PNG polynomial (0xEDB88320, reflected), so `zlib.crc32(bytes)` in Python gives the same
// value. libdeflate's PCLMUL implementation runs at memory speed; zlib is the fallback when it is absent.
#pragma once

#include <cstddef>
#include <cstdint>

namespace facetex {

uint32_t crc32(const void* data, size_t size, uint32_t previous = 0);

}  // namespace facetex
