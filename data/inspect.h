// `facetex data inspect`: a summary of a packed dataset and, optionally, a PNG contact sheet of N rows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace facetex::data {

struct InspectOptions {
  std::filesystem::path dir;
  int64_t rows = 0;                   // contact sheet rows (0: no sheet)
  std::filesystem::path sheet;        // PNG path for the sheet
  int64_t seed = -1;                  // -1: the first N rows; otherwise N rows drawn with this seed
  int tile = 128;                     // side of one tile in the sheet
};

// Returns the printable summary (several lines); writes the sheet when asked.
std::string inspect_dataset(const InspectOptions& options);

}  // namespace facetex::data
