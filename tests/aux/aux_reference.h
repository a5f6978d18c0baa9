// The reference data of the aux tests, made once per test process: tests/aux/make_aux_reference.py writes PyTorch
// versions of the networks with seeded random weights in the production .pth layouts plus their outputs on fixed
// inputs (reference.h5), and each .pth is converted with tools/convert_torch_state_dict.py exactly as
// `facetex convert torch-state-dict` runs it. Needs /usr/bin/python3 with torch, numpy and h5py; without them the
// tests that need it are skipped.
#pragma once

#include <hdf5.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <string>

namespace facetex::test {

struct AuxReference {
  std::filesystem::path dir;
  // Converted weight files: dfr.h5, rignet.h5, net_recon.h5, pnet.h5, rnet.h5, onet.h5 (one group each, named like
  // the file).
  std::filesystem::path weights(const std::string& net) const { return dir / (net + ".h5"); }
  // A dataset of reference.h5 ("dfr/coeffs", "detect/boxes", ...) as a CPU tensor.
  at::Tensor tensor(const std::string& name) const;
};

// The shared reference (generated on first use), or nullptr with *skip (python3 lacks torch/h5py) or *error (the
// script or a conversion failed) set.
const AuxReference* aux_reference(std::string* skip, std::string* error);

}  // namespace facetex::test

// In a TEST body: `const auto* ref = ...;` skipping when the reference cannot be made on this machine and failing
// when making it went wrong.
#define FACETEX_AUX_REFERENCE(ref)                                            \
  std::string ref##_skip, ref##_error;                                        \
  const ::facetex::test::AuxReference* ref =                                  \
      ::facetex::test::aux_reference(&ref##_skip, &ref##_error);              \
  if (!ref##_error.empty()) FAIL() << ref##_error;                            \
  if (!ref) GTEST_SKIP() << ref##_skip
