// The MPI backend of the Communicator (CPU tensors) and the process-level MPI lifetime. Only cluster/ includes
// <mpi.h>; everything else sees the Communicator interface.
#pragma once

#include <memory>

#include "cluster/communicator.h"

namespace facetex::cluster {

// Initialises MPI (MPI_THREAD_MULTIPLE requested) on first use and checks that it agrees with `world`.
std::shared_ptr<Communicator> make_mpi_communicator(const World& world);

// Ends MPI for a process that is leaving with `exit_code`: MPI_Finalize when every rank leaves the same way (0, or 75
// after an agreed preemption), MPI_Abort of the whole job when this rank fails alone (peers would otherwise wait in
// their next collective). No-op when MPI was never initialised.
void finish_mpi(int exit_code);

}  // namespace facetex::cluster
