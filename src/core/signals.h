#pragma once
// Preemption: SIGTERM and SIGUSR1 (Slurm's `--signal`, `scancel`, a cluster's preemption)
// only set a flag; the trainer checks it at every step boundary, agrees on it with the
// other ranks and stops there with a checkpoint. A second SIGTERM at least 5 s after the
// first ends the process at once (Slurm's time limit sends two within milliseconds).
namespace mixvae::signals {

// Installs the handlers (idempotent). Commands that never check the flag do not call it,
// so SIGTERM keeps its default meaning for them.
void install_stop_handlers();
// True once SIGTERM or SIGUSR1 arrived (or request_stop() was called).
bool stop_requested();
// The signal that asked to stop (0 when none, or a request from code).
int stop_signal();
// Asks to stop as a signal would (a sweep forwarding a stop, tests).
void request_stop();
// Forgets a request (tests).
void clear_stop();

}  // namespace mixvae::signals
