#include "cluster/world.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/env_param.h"
#include "core/error.h"

namespace facetex::cluster {
namespace {
bool has_env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}
}  // namespace

World discover_world() {
  World w;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) w.node = host;
  if (has_env("OMPI_COMM_WORLD_RANK")) {
    w.launcher = "openmpi";
    w.rank = static_cast<int>(env_int("OMPI_COMM_WORLD_RANK", 0));
    w.size = static_cast<int>(env_int("OMPI_COMM_WORLD_SIZE", 1));
    w.local_rank = static_cast<int>(env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0));
    w.local_size = static_cast<int>(env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1));
  } else if (has_env("SLURM_PROCID") && has_env("SLURM_NTASKS")) {
    w.launcher = "slurm";
    w.rank = static_cast<int>(env_int("SLURM_PROCID", 0));
    w.size = static_cast<int>(env_int("SLURM_NTASKS", 1));
    w.local_rank = static_cast<int>(env_int("SLURM_LOCALID", 0));
    // SLURM_NTASKS_PER_NODE is only set with --ntasks-per-node; SLURM_TASKS_PER_NODE ("2(x3),1") always is. The
    // first count is this node's only on homogeneous allocations, which is what one-task-per-GPU jobs use.
    const std::string per_node = env_string("SLURM_TASKS_PER_NODE", "1");
    w.local_size = std::max(1, std::atoi(per_node.c_str()));
  } else {
    w.launcher = "single";
  }
  FACETEX_CHECK_USAGE(w.size >= 1 && w.rank >= 0 && w.rank < w.size, "{} environment gives rank {} of {}", w.launcher,
                      w.rank, w.size);
  FACETEX_CHECK_USAGE(w.local_rank >= 0, "{} environment gives local rank {}", w.launcher, w.local_rank);
  return w;
}

int local_device_index(const World& world, int visible) {
  FACETEX_CHECK_USAGE(visible > 0, "rank {} on {}: device cuda, but no GPU is visible (CUDA_VISIBLE_DEVICES='{}')",
                      world.rank, world.node, env_string("CUDA_VISIBLE_DEVICES", ""));
  return world.local_rank % visible;
}

}  // namespace facetex::cluster
