#include "data/image_codec.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace facetex::data {
namespace {

bool is_jpeg(std::string_view b) {
  return b.size() >= 3 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8 && uint8_t(b[2]) == 0xFF;
}
bool is_png(std::string_view b) { return b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8); }

// A complete JPEG ends with the EOI marker (FF D9); some writers append a few bytes after it, so look at the tail.
bool jpeg_has_end_marker(std::string_view b) {
  constexpr size_t kTail = 64;
  const size_t from = b.size() > kTail ? b.size() - kTail : 0;
  for (size_t i = b.size(); i-- > from + 1;) {
    if (uint8_t(b[i - 1]) == 0xFF && uint8_t(b[i]) == 0xD9) return true;
  }
  return false;
}

cv::Mat decode_bgr(std::string_view bytes, const std::string& context) {
  FACETEX_CHECK_DATA(!bytes.empty(), "{}: empty file", context);
  FACETEX_CHECK_DATA(is_jpeg(bytes) || is_png(bytes), "{}: not a PNG or JPEG file", context);
  FACETEX_CHECK_DATA(!is_jpeg(bytes) || jpeg_has_end_marker(bytes), "{}: truncated JPEG (no end-of-image marker)",
                     context);
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat img;
  try {
    img = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw DataError(fmt::format("{}: cannot decode image: {}", context, e.what()));
  }
  FACETEX_CHECK_DATA(!img.empty(), "{}: cannot decode image (corrupt or truncated {})", context,
                     is_png(bytes) ? "PNG" : "JPEG");
  return img;
}

Image from_bgr(const cv::Mat& bgr) {
  Image out;
  out.height = bgr.rows;
  out.width = bgr.cols;
  out.rgb.resize(size_t(bgr.rows) * bgr.cols * 3);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, out.rgb.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return out;
}

cv::Mat to_bgr(const Image& image) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

std::string encode(const Image& image, const char* ext, const std::vector<int>& params) {
  std::vector<uint8_t> buf;
  FACETEX_CHECK_RUNTIME(cv::imencode(ext, to_bgr(image), buf, params), "cannot encode {} image", ext);
  return std::string(buf.begin(), buf.end());
}

}  // namespace

SquarePolicy parse_square_policy(const std::string& text) {
  if (text == "none") return SquarePolicy::kNone;
  if (text == "center-crop") return SquarePolicy::kCenterCrop;
  throw UsageError(fmt::format("unknown square policy '{}' (none, center-crop)", text));
}

Image decode_image(std::string_view bytes, const std::string& context) { return from_bgr(decode_bgr(bytes, context)); }

void hwc_rows_to_chw(const uint8_t* hwc_rows, int y0, int rows, int height, int width, bool xflip, uint8_t* out) {
  const size_t plane = size_t(height) * width, offset = size_t(y0) * width;
  cv::Mat src(rows, width, CV_8UC3, const_cast<uint8_t*>(hwc_rows));
  std::vector<cv::Mat> planes = {cv::Mat(rows, width, CV_8UC1, out + offset),
                                 cv::Mat(rows, width, CV_8UC1, out + plane + offset),
                                 cv::Mat(rows, width, CV_8UC1, out + 2 * plane + offset)};
  cv::split(src, planes);
  if (xflip) {
    for (auto& p : planes) cv::flip(p, p, 1);
  }
}

void hwc_to_chw(const uint8_t* hwc, int height, int width, bool xflip, uint8_t* out) {
  hwc_rows_to_chw(hwc, 0, height, height, width, xflip, out);
}

void decode_image_chw(std::string_view bytes, int height, int width, bool xflip, uint8_t* out,
                      const std::string& context) {
  cv::Mat bgr = decode_bgr(bytes, context);
  FACETEX_CHECK_DATA(bgr.rows == height && bgr.cols == width, "{}: decoded image is {}x{}, expected {}x{}", context,
                     bgr.cols, bgr.rows, width, height);
  // BGR HWC -> RGB CHW in one pass: split into planes in reverse channel order.
  const size_t plane = size_t(height) * width;
  std::vector<cv::Mat> planes = {cv::Mat(height, width, CV_8UC1, out + 2 * plane),
                                 cv::Mat(height, width, CV_8UC1, out + plane), cv::Mat(height, width, CV_8UC1, out)};
  cv::split(bgr, planes);
  if (xflip) {
    for (auto& p : planes) cv::flip(p, p, 1);
  }
}

std::string encode_png(const Image& image, int compression_level) {
  return encode(image, ".png", {cv::IMWRITE_PNG_COMPRESSION, compression_level});
}

std::string encode_jpeg(const Image& image, int quality) {
  return encode(image, ".jpg", {cv::IMWRITE_JPEG_QUALITY, quality});
}

Image fit_square(const Image& image, const FitOptions& options, const std::string& context) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  if (image.height != image.width) {
    FACETEX_CHECK_DATA(options.square == SquarePolicy::kCenterCrop,
                       "{}: image is {}x{}, not square (pass --square center-crop to crop the central square)",
                       context, image.width, image.height);
    int side = std::min(image.height, image.width);
    rgb = rgb(cv::Rect((image.width - side) / 2, (image.height - side) / 2, side, side));
  }
  const int side = rgb.rows;
  FACETEX_CHECK_DATA(side >= options.resolution || options.allow_upscale,
                     "{}: image is {}x{}, smaller than --resolution {} (pass --allow-upscale to enlarge it)", context,
                     image.width, image.height, options.resolution);
  Image out;
  out.height = out.width = options.resolution;
  out.rgb.resize(size_t(options.resolution) * options.resolution * 3);
  cv::Mat dst(options.resolution, options.resolution, CV_8UC3, out.rgb.data());
  if (side == options.resolution) {
    rgb.copyTo(dst);
  } else {
    cv::resize(rgb, dst, dst.size(), 0, 0, side > options.resolution ? cv::INTER_AREA : cv::INTER_CUBIC);
  }
  return out;
}

void write_png(const std::string& path, const Image& image) { write_file_atomic(path, encode_png(image, 6)); }

}  // namespace facetex::data
