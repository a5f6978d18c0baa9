// The NCCL backend of the Communicator (CUDA LibTorch builds with NCCL): collectives on CUDA tensors, asynchronous
// gradient allreduces on a dedicated stream, the unique id bootstrapped over MPI (or, for srun without PMIx, through
// a rendezvous file: FACETEX_NCCL_ID_FILE), and a watchdog that polls NCCL's async errors and the age of the oldest
// pending collective — on either it aborts the NCCL communicator and ends the process (exit 1) naming the rank.
// CPU tensors handed to it (statistics, flags) are staged through the device.
#pragma once

#include <memory>

#include "cluster/communicator.h"

namespace facetex::cluster {

// True when this build has the NCCL backend.
bool nccl_available();
// `device` must be a CUDA device. UsageError when nccl_available() is false.
std::shared_ptr<Communicator> make_nccl_communicator(const World& world, const c10::Device& device);

}  // namespace facetex::cluster
