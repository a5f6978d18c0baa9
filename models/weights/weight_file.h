// facetex weight files (HDF5): published StyleGAN2 pickles and PyTorch state dicts convert into them
// (tools/convert_stylegan2_pkl.py, tools/convert_torch_state_dict.py), checkpoints embed the same layout.
//
//   attrs: format = "facetex-weights", version = 1, created_by, source
//   /<network>/                 one group per network (G, D, G_ema, ...); attrs class_name, init_kwargs (JSON)
//   /<network>/<state_dict key> one dataset per parameter or buffer, named exactly as the reference's state_dict
//                               ("synthesis.b8.conv0.affine.weight", "mapping.w_avg"); '.' is part of the name
//
// The same reader also takes any HDF5 group laid out this way, e.g. the parity files' `<case>/params/G`.
#pragma once

#include <ATen/core/Tensor.h>
#include <hdf5.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace facetex::models {

inline constexpr char kWeightFormat[] = "facetex-weights";
// Training checkpoints hold the same network groups plus a /train group; they are readable as weight files.
inline constexpr char kCheckpointFormat[] = "facetex-checkpoint";
inline constexpr int64_t kWeightVersion = 1;

struct NetworkWeights {
  std::string class_name;
  std::string init_kwargs = "{}";                          // JSON
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // state_dict order
  const at::Tensor* find(const std::string& name) const;
};

// Every dataset directly in `group` becomes a tensor (float data as float32, integers as int64).
NetworkWeights read_network_group(hid_t group, const std::string& context);

// A whole weight file (or checkpoint): every root group with a class_name attribute is a network. DataError naming
// the file for anything that is neither.
std::map<std::string, NetworkWeights> read_weight_file(const std::filesystem::path& path);
NetworkWeights read_network(const std::filesystem::path& path, const std::string& network);

// Written atomically.
void write_weight_file(const std::filesystem::path& path, const std::map<std::string, NetworkWeights>& networks,
                       const std::string& source, const std::string& created_by);
void write_network_group(hid_t parent, const std::string& name, const NetworkWeights& weights);

// The module's parameters and buffers with their state_dict names.
NetworkWeights network_state(const torch::nn::Module& module, const std::string& class_name,
                             const std::string& init_kwargs);

// Copies every tensor into the module. The file and the module must hold exactly the same names and shapes, and
// floating-point values must be finite; otherwise a DataError names the first mismatch, e.g.
//   "G.h5 /G: synthesis.b8.conv0.weight has shape [64, 32, 3, 3] in the file, the network expects [64, 64, 3, 3]".
void load_network(torch::nn::Module& module, const NetworkWeights& weights, const std::string& context);

}  // namespace facetex::models
