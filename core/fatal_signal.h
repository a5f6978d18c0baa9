// A report for the crashes no error path catches (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT), on stderr: one line
// naming the program, host, pid, rank and thread; the faulting address and the /proc/self/maps line holding the
// program counter; the raw backtrace. The signal is then re-raised with its default action, so the exit status
// (128 + signal) and core dumps stay what they would have been.
//
// Why: a batch job on a cluster that dies with only "Segmentation fault" in a Slurm log gives the operator nothing
// to file. The backtrace is glibc's (addresses as binary(+offset)); `addr2line -f -C -e BINARY OFFSET...` names the
// functions — scripts/gpu_check/run_full.sh does that for the device runs. Torch-free, async-signal-safe after
// installation (the handler only calls open/read/write/close(2), backtrace(3) and backtrace_symbols_fd(3)).
#pragma once

namespace facetex {

// Installs the handlers (idempotent). `program` must outlive the process (a string literal or argv[0]).
void install_fatal_signal_report(const char* program);

// The rank printed in the report (set once the world is known; 0 before).
void set_fatal_signal_rank(int rank);

}  // namespace facetex
