#include "models/aux/weight_group.h"

#include "core/error.h"

namespace facetex::models::aux {

NetworkGroup read_network_group_or_only(const std::filesystem::path& file, const std::string& network) {
  if (!network.empty()) return {file.string() + " /" + network, read_network(file, network)};
  auto all = read_weight_file(file);
  std::vector<std::string> names;
  for (const auto& [name, w] : all) names.push_back(name);
  FACETEX_CHECK_DATA(all.size() == 1, "{}: expected exactly one network group, found {} ({}); name the one to use",
                     file.string(), all.size(), names);
  return {file.string() + " /" + all.begin()->first, std::move(all.begin()->second)};
}

std::vector<int64_t> tensor_shape(const NetworkWeights& weights, const std::string& tensor, int64_t rank,
                                  const std::string& context) {
  const at::Tensor* t = weights.find(tensor);
  FACETEX_CHECK_DATA(t != nullptr, "{}: {} is missing from the file", context, tensor);
  FACETEX_CHECK_DATA(t->dim() == rank, "{}: {} has shape {} in the file, the network expects {} dimensions", context,
                     tensor, t->sizes().vec(), rank);
  return t->sizes().vec();
}

}  // namespace facetex::models::aux
