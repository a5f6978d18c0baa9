// Reading the single network group of a converted auxiliary weight file (`facetex convert torch-state-dict`
// writes one group per .pth, named by --name) and the shapes that size a network before it is built.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/weights/weight_file.h"

namespace facetex::models::aux {

struct NetworkGroup {
  std::string context;  // "<file> /<group>", the prefix of load errors
  NetworkWeights weights;
};

// The group `network` of the file, or, when `network` is empty, the file's only network group. DataError naming
// the file (and the groups it has) otherwise.
NetworkGroup read_network_group_or_only(const std::filesystem::path& file, const std::string& network);

// The shape of `tensor`, which must exist and have `rank` dimensions; DataError naming the tensor otherwise.
// Used where a dimension of the network (DFR's num_ws, RigNet's layer count) is read from its weights.
std::vector<int64_t> tensor_shape(const NetworkWeights& weights, const std::string& tensor, int64_t rank,
                                  const std::string& context);

}  // namespace facetex::models::aux
