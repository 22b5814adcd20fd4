#pragma once
// Hands a sweep's runs to groups of ranks as they become free. World rank 0 is the
// coordinator (and the leader of group 0, so it trains too: it serves requests between
// its own training steps); the leader of every other group asks it for the next run and
// reports the outcome of the last. Messages go through dist::Mailbox (never a collective
// on the world), so groups finish at their own pace and no rank spins while it waits.
//
// A run that uses an artifact being produced by a running run, of this sweep or of another
// process (its lock file, train/pretrain_artifact.h), waits for it (another run is handed
// out meanwhile), so one artifact is trained once.
// A stop (SIGTERM/SIGUSR1 on any rank, or a run that ended preempted) is forwarded to
// every running group; no new run starts; the sweep exits with kExitPreempted.
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dist/mailbox.h"
#include "sweep/plan.h"

namespace mixvae::sweep {

struct Outcome {
  int64_t index = -1;
  std::string status;  // done | failed | preempted
  std::string error;   // one line, for failed
  double seconds = 0;
  std::optional<double> acc, nmi, ari;
  nlohmann::json to_json() const;
  static Outcome from_json(const nlohmann::json& j);
};

struct RunState {
  RunSpec spec;
  std::vector<std::string> artifacts;  // artifact files it uses (pretrained autoencoder, shared stages)
  std::string status = "pending";      // pending | running | done | failed | preempted
  std::string error;
  double seconds = 0;
  std::optional<double> acc, nmi, ari;
  int group = -1;
  // Runs with the same non-empty key may train together as one seed ensemble.
  std::string bundle;
};

class Coordinator {
 public:
  // `runs` are this invocation's runs (a slice of the sweep, if sliced). sweep.json goes to
  // json_path; artifacts are looked for in artifact_dir.
  // seeds_per_process > 1: a run handed out takes up to that many - 1 pending runs of its
  // bundle with it (companions()), trained as one ensemble by the same group.
  Coordinator(dist::Mailbox* mailbox, int groups, int ranks_per_run, std::vector<RunState> runs, std::string json_path,
              std::string artifact_dir, nlohmann::json header, int seeds_per_process = 1);
  // Group 0's next run (-1: none left). Blocks while no run is eligible, serving others.
  int64_t next_for_self(const Outcome* prev);
  // The runs handed out with group 0's last run (empty: it trains alone).
  const std::vector<int64_t>& companions() const { return self_with_; }
  // Group 0's outcome of a companion run.
  void report(const Outcome& o) { record(o); }
  // Handles waiting messages; cheap enough to call between training steps.
  void serve();
  // After group 0 has ended: serves until every group has ended, writes the final
  // sweep.json, sends every rank the exit code and returns it.
  int finish();

 private:
  dist::Mailbox* mb_;
  int groups_, rpr_;
  std::vector<RunState> runs_;
  std::string json_path_, artifact_dir_;
  nlohmann::json header_;
  std::vector<int64_t> running_;                  // per group: run index or -1
  enum class GroupState { Busy, Parked, Ended };  // Parked: waiting for an eligible run
  std::vector<GroupState> state_;                 // per group
  std::map<std::string, int64_t> producing_;      // artifact -> the run producing it
  bool stopping_ = false;
  int64_t self_assigned_ = -2;  // group 0's answer (-2: none yet)
  std::vector<int64_t> self_with_;
  int seeds_per_process_ = 1;
  double start_time_, last_parked_check_ = 0;
  double ran_seconds_ = 0;
  int ran_count_ = 0;

  void handle(int from, const std::string& msg);
  void on_request(int group, const Outcome* prev);
  void assign_or_park(int group);
  struct Counts {
    int done = 0, failed = 0, running = 0, pending = 0;  // pending includes preempted
  };
  Counts count() const;
  void record(const Outcome& o);
  bool try_assign(int group);                          // false: nothing eligible now
  bool being_made(const std::string& artifact) const;  // a missing artifact someone is making
  void end_group(int group);
  void send_group(int group, const nlohmann::json& msg, bool include_self);
  void begin_stop(const std::string& why);
  void retry_parked(bool force);
  void write_json(const std::string& status) const;
  void summary(const std::string& event) const;
};

class Worker {
 public:
  Worker(dist::Mailbox* mailbox, bool leader, int group) : mb_(mailbox), leader_(leader), group_(group) {}
  // Reports prev (leaders) and waits for the next run of this group (-1: none left).
  int64_t next(const Outcome* prev);
  // The runs handed out with the last one (see Coordinator::companions).
  const std::vector<int64_t>& companions() const { return with_; }
  // Reports a companion run's outcome (leaders; call before next()).
  void report(const Outcome& o);
  // Between training steps: a "stop" from the coordinator becomes a stop request.
  void poll_stop();
  // After the last run: waits for the coordinator's exit code.
  int wait_exit_code();

 private:
  dist::Mailbox* mb_;
  bool leader_;
  int group_;
  bool handle(const std::string& msg, int64_t* index);
  int exit_code_ = -1;
  std::vector<int64_t> with_;
};

}  // namespace mixvae::sweep
