// Who am I in the job? Rank, world size and local rank from the launcher's environment, without initialising
// MPI: Open MPI's mpirun (OMPI_COMM_WORLD_*), Slurm's srun (SLURM_PROCID/NTASKS/LOCALID), or a plain single
// process. The Communicator (cluster/communicator.h) checks that MPI agrees once it is initialised.
#pragma once

#include <string>

namespace facetex::cluster {

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string node;      // host name
  std::string launcher;  // "openmpi", "slurm" or "single"
  bool is_root() const { return rank == 0; }
};

// Reads the environment. UsageError when the variables are inconsistent (e.g. rank >= size).
World discover_world();

// The GPU of this rank among the `visible` ones (CUDA_VISIBLE_DEVICES after the launcher's binding): local_rank when
// every GPU of the node is visible to every rank (mpirun, srun without GPU binding), 0 when the launcher shows each
// task only its own (srun --gpus-per-task=1 with per-task binding) — local_rank % visible covers both.
// UsageError when no GPU is visible.
int local_device_index(const World& world, int visible);

}  // namespace facetex::cluster
