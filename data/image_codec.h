// Image decoding/encoding and the squaring/resizing rule of `data pack` (OpenCV imgcodecs + imgproc).
//
// Documented conversions: images are decoded as 8-bit RGB (greyscale is replicated, alpha dropped, 16-bit
// scaled to 8-bit, EXIF orientation applied). Squaring: `none` requires square inputs, `center-crop` keeps the
// central square. Resizing: cv::INTER_AREA (exact box-filter antialiasing) when shrinking, cv::INTER_CUBIC when
// enlarging, which only happens with --allow-upscale.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace facetex::data {

struct Image {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> rgb;  // HWC, RGB, 8-bit
  size_t bytes() const { return rgb.size(); }
};

enum class SquarePolicy { kNone, kCenterCrop };
SquarePolicy parse_square_policy(const std::string& text);  // "none" | "center-crop"

// Decodes PNG/JPEG bytes. DataError "<context>: <reason>" for anything that is not a complete image
// (including a JPEG cut short, which libjpeg would otherwise pad with grey).
Image decode_image(std::string_view bytes, const std::string& context);

// Decodes and writes planar CHW uint8 into `out` (3*height*width bytes), optionally mirrored along x.
// The decoded size must be exactly height x width (DataError otherwise). Used by the loader's worker threads.
void decode_image_chw(std::string_view bytes, int height, int width, bool xflip, uint8_t* out,
                      const std::string& context);
// The same conversion for raw HWC RGB pixels (OpenCV's SIMD deinterleave).
void hwc_to_chw(const uint8_t* hwc, int height, int width, bool xflip, uint8_t* out);
// Converts image rows [y0, y0 + rows) given as HWC bytes into their place in the planar output of a
// height x width image: lets a reader process an image block by block while the block is in cache.
void hwc_rows_to_chw(const uint8_t* hwc_rows, int y0, int rows, int height, int width, bool xflip, uint8_t* out);

std::string encode_png(const Image& image, int compression_level = 3);
std::string encode_jpeg(const Image& image, int quality);

struct FitOptions {
  int resolution = 0;  // target side
  SquarePolicy square = SquarePolicy::kNone;
  bool allow_upscale = false;
};
// Squares and resizes to resolution x resolution. DataError naming `context` for non-square inputs under
// SquarePolicy::kNone and for inputs smaller than the resolution without allow_upscale.
Image fit_square(const Image& image, const FitOptions& options, const std::string& context);

// Writes an RGB image as PNG (atomically); used for contact sheets and grids.
void write_png(const std::string& path, const Image& image);

}  // namespace facetex::data
