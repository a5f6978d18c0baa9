#include "data/inspect.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/sampler.h"

namespace fs = std::filesystem;

namespace facetex::data {

std::string inspect_dataset(const InspectOptions& o) {
  FACETEX_CHECK_USAGE(o.rows >= 0, "--rows must be >= 0, got {}", o.rows);
  FACETEX_CHECK_USAGE(o.rows == 0 || !o.sheet.empty(), "--rows needs --sheet PATH.png");
  FACETEX_CHECK_USAGE(o.rows == 0 || (o.tile >= 8 && o.tile <= 1024), "--tile must be 8..1024, got {}", o.tile);
  auto ds = Dataset::open(o.dir, OnCorrupt::kFail);
  const Manifest& m = ds->manifest();
  int64_t bytes = 0;
  for (const auto& s : m.shards) bytes += s.bytes;
  // Optional annotation datasets (written by `data annotate` / `data synth`) present in the first shard.
  const std::vector<std::string> extra = ds->shards().front()->annotation_names();
  std::string out;
  out += fmt::format("dataset      {}\n", o.dir.string());
  out += fmt::format("images       {} ({} shards, {} inputs, {} skipped)\n", ds->size(), m.shards.size(),
                     m.total_inputs, m.skipped.size());
  out += fmt::format("resolution   {}x{}x{}\n", m.resolution, m.resolution, m.channels);
  out += fmt::format("storage      {}\n", storage_name(m.storage));
  out += fmt::format("size         {:.1f} MiB ({:.1f} KiB per image)\n", bytes / 1048576.0,
                     ds->size() ? bytes / 1024.0 / ds->size() : 0.0);
  std::string annotations;
  for (const auto& e : extra) annotations += (annotations.empty() ? "" : ", ") + e;
  out += fmt::format("annotations  {}\n", annotations.empty() ? std::string("none") : annotations);
  out += fmt::format("source       {}\n", m.source);
  out += fmt::format("created by   {}\n", m.created_by);

  if (o.rows > 0) {
    const int64_t n = std::min(o.rows, ds->size());
    std::vector<int64_t> rows(static_cast<size_t>(n));
    if (o.seed < 0) {
      for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
    } else {
      auto perm = epoch_permutation(ds->size(), static_cast<uint64_t>(o.seed), 0);
      rows.assign(perm.begin(), perm.begin() + n);
    }
    const int cols = static_cast<int>(std::ceil(std::sqrt(double(n))));
    const int lines = static_cast<int>((n + cols - 1) / cols);
    cv::Mat sheet(lines * o.tile, cols * o.tile, CV_8UC3, cv::Scalar(0, 0, 0));
    std::string bytes_buf;
    const int r = ds->resolution();
    for (int64_t i = 0; i < n; ++i) {
      auto loc = ds->locate(rows[static_cast<size_t>(i)]);
      loc.shard->read_row(loc.row, bytes_buf);
      Image img = ds->storage() == Storage::kRaw
                      ? Image{r, r, std::vector<uint8_t>(bytes_buf.begin(), bytes_buf.end())}
                      : decode_image(bytes_buf, loc.shard->describe_row(loc.row));
      cv::Mat src(img.height, img.width, CV_8UC3, img.rgb.data());
      cv::Mat tile = sheet(cv::Rect(static_cast<int>(i % cols) * o.tile, static_cast<int>(i / cols) * o.tile, o.tile, o.tile));
      cv::resize(src, tile, tile.size(), 0, 0, o.tile < r ? cv::INTER_AREA : cv::INTER_NEAREST);
    }
    Image out_img{sheet.rows, sheet.cols, std::vector<uint8_t>(sheet.data, sheet.data + sheet.total() * 3)};
    write_png(o.sheet.string(), out_img);
    out += fmt::format("sheet        {} ({} rows, {}x{} tiles)\n", o.sheet.string(), n, cols, lines);
  }
  return out;
}

}  // namespace facetex::data
