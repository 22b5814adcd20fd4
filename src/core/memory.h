#pragma once
// The process's peak resident memory, for the per-epoch log and result.json (issue 8:
// "peak memory per rank reported"). A sweep's worker trains many runs in one process,
// so there it is the peak of that process so far, not of one run.
namespace mixvae {

// Peak resident set size of this process in MiB (getrusage ru_maxrss); 0 where unknown.
double peak_rss_mib();

}  // namespace mixvae
