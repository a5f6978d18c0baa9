// The training loop (paper-system-spec.md §4.1, §5.2-5.4): per iteration one real batch and four phases
// (Gmain, Greg every G_reg_interval, Dmain, Dreg every D_reg_interval) with gradient-accumulation rounds, gains,
// NaN/Inf neutralisation and Adam steps; EMA of G; kimg accounting; ADA every ada_interval iterations; ticks with a
// status line, stats.jsonl and metrics; grids and checkpoints every snap ticks; automatic resume from the run
// folder's latest checkpoint; preemption (SIGUSR1/SIGTERM) -> checkpoint at the next step -> exit 75.
#pragma once

#include "core/config.h"
#include "train/train_options.h"

namespace facetex::train {

struct TrainResult {
  int exit_code = 0;       // 0 finished, 75 preempted (checkpoint written)
  int64_t cur_nimg = 0;
  int64_t steps_run = 0;   // iterations executed by this process
  bool resumed = false;
  int rank = 0;  // this process's rank: the job's summary is rank 0's to print
};

// Runs (or resumes) the training described by `options` (resolved from `config`, which is saved with the run).
// `max_steps` >= 0 stops after that many iterations of this process, writing a checkpoint as a preemption
// would (tests use it to interrupt a run at an exact step).
TrainResult run_training(const TrainOptions& options, const Config& config, int64_t max_steps = -1);

}  // namespace facetex::train
