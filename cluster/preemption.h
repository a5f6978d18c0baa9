// Preemption: Slurm sends SIGUSR1 (--signal=B:USR1@120) or SIGTERM before it kills a job. The handler only sets a
// flag; the training loop checks it at the next step boundary, writes a checkpoint and exits with 75 so the job is
// requeued and resumes. (With several ranks, the ranks agree on the flag first: cluster/ communicators, issue 6.)
#pragma once

namespace facetex::cluster {

// Installs the SIGUSR1 and SIGTERM handlers (idempotent).
void install_preemption_handlers();
// Whether a preemption signal has arrived (and which: 0 if none).
bool preemption_requested();
int preemption_signal();
// For tests: behave as if the signal had arrived / clear it.
void request_preemption(int signal_number);
void clear_preemption();

}  // namespace facetex::cluster
