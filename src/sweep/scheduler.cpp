#include "sweep/scheduler.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/errors.h"
#include "core/files.h"
#include "core/signals.h"

namespace mixvae::sweep {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string fmt_duration(double s) {
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
std::optional<double> opt_of(const json& j, const char* k) {
  if (!j.contains(k) || !j[k].is_number()) return std::nullopt;
  return j[k].get<double>();
}
}  // namespace

json Outcome::to_json() const {
  return {{"index", index},  {"status", status}, {"error", error}, {"seconds", seconds},
          {"acc", opt(acc)}, {"nmi", opt(nmi)},  {"ari", opt(ari)}};
}

Outcome Outcome::from_json(const json& j) {
  Outcome o;
  o.index = j.value("index", int64_t(-1));
  o.status = j.value("status", std::string("failed"));
  o.error = j.value("error", std::string());
  o.seconds = j.value("seconds", 0.0);
  o.acc = opt_of(j, "acc");
  o.nmi = opt_of(j, "nmi");
  o.ari = opt_of(j, "ari");
  return o;
}

// ---------------------------------------------------------------------------------------
Coordinator::Coordinator(dist::Mailbox* mailbox, int groups, int ranks_per_run, std::vector<RunState> runs,
                         std::string json_path, std::string artifact_dir, json header, int seeds_per_process)
    : mb_(mailbox),
      groups_(groups),
      rpr_(ranks_per_run),
      runs_(std::move(runs)),
      json_path_(std::move(json_path)),
      artifact_dir_(std::move(artifact_dir)),
      header_(std::move(header)),
      running_(size_t(groups), -1),
      state_(size_t(groups), GroupState::Busy),
      start_time_(now_s()) {
  seeds_per_process_ = std::max(1, seeds_per_process);
  header_["started"] = iso_now();
  write_json("running");
  const int done = count().done;
  summary(std::to_string(runs_.size()) + " run(s) on " + std::to_string(groups_) + " group(s) of " +
          std::to_string(rpr_) + " rank(s)" + (done ? ", " + std::to_string(done) + " finished earlier" : ""));
}

void Coordinator::send_group(int group, const json& msg, bool include_self) {
  const std::string text = msg.dump();
  for (int r = group * rpr_; r < (group + 1) * rpr_; ++r) {
    if (r == 0) {
      if (include_self && msg["t"] == "run") {
        self_assigned_ = msg["i"].get<int64_t>();
        self_with_ = msg.value("with", std::vector<int64_t>{});
      }
      if (include_self && msg["t"] == "end") self_assigned_ = -1;
      continue;
    }
    if (mb_) mb_->send(r, text);
  }
}

void Coordinator::record(const Outcome& o) {
  if (o.index < 0 || o.index >= int64_t(runs_.size())) return;
  RunState& r = runs_[size_t(o.index)];
  r.status = o.status;
  r.error = o.error;
  r.seconds = o.seconds;
  r.acc = o.acc;
  r.nmi = o.nmi;
  r.ari = o.ari;
  for (auto it = producing_.begin(); it != producing_.end();)
    it = it->second == o.index ? producing_.erase(it) : std::next(it);
  if (o.status == "done" || o.status == "failed") {
    ran_seconds_ += o.seconds;
    ++ran_count_;
  }
  std::string what = r.spec.label() + " " + o.status;
  if (o.status == "done" && o.acc) {
    char buf[96];
    std::snprintf(buf, sizeof buf, ": ACC %.4f NMI %.4f ARI %.4f", *o.acc, o.nmi.value_or(NAN), o.ari.value_or(NAN));
    what += buf;
  }
  if (o.status == "failed") what += ": " + o.error;
  what += " (" + fmt_duration(o.seconds) + ")";
  if (o.status == "preempted") begin_stop("run " + r.spec.label() + " was stopped by a signal");
  write_json("running");
  summary(what);
}

bool Coordinator::being_made(const std::string& artifact) const {
  // By one of this sweep's runs, or by another process (another array slice, another
  // sweep on the same runs_dir) holding its lock file (train/pretrain_artifact.h).
  return producing_.count(artifact) > 0 || lock_file_live(lock_file_of((fs::path(artifact_dir_) / artifact).string()));
}

bool Coordinator::try_assign(int group) {
  for (auto& r : runs_) {
    if (r.status != "pending" && r.status != "preempted") continue;
    std::vector<std::string> missing;
    bool wait = false;
    for (const auto& a : r.artifacts) {
      if (fs::exists(fs::path(artifact_dir_) / a)) continue;
      missing.push_back(a);
      wait = wait || being_made(a);
    }
    if (wait) continue;
    for (const auto& a : missing) producing_[a] = int64_t(r.spec.index);  // this run will make it
    r.status = "running";
    r.group = group;
    running_[size_t(group)] = int64_t(r.spec.index);
    state_[size_t(group)] = GroupState::Busy;
    // Companions: pending runs of the same bundle (other seeds) whose artifacts nobody
    // else is producing; this group produces theirs too.
    std::vector<int64_t> with;
    for (auto& o : runs_) {
      if (int(with.size()) + 1 >= seeds_per_process_ || r.bundle.empty()) break;
      if (&o == &r || o.bundle != r.bundle || (o.status != "pending" && o.status != "preempted")) continue;
      bool busy = false;
      for (const auto& a : o.artifacts) busy = busy || (!fs::exists(fs::path(artifact_dir_) / a) && being_made(a));
      if (busy) continue;
      for (const auto& a : o.artifacts)
        if (!fs::exists(fs::path(artifact_dir_) / a)) producing_[a] = int64_t(o.spec.index);
      o.status = "running";
      o.group = group;
      with.push_back(int64_t(o.spec.index));
    }
    json msg = {{"t", "run"}, {"i", int64_t(r.spec.index)}};
    if (!with.empty()) msg["with"] = with;
    send_group(group, msg, true);
    write_json("running");
    return true;
  }
  return false;
}

void Coordinator::end_group(int group) {
  state_[size_t(group)] = GroupState::Ended;
  running_[size_t(group)] = -1;
  send_group(group, {{"t", "end"}}, true);
}

void Coordinator::on_request(int group, const Outcome* prev) {
  if (prev) record(*prev);
  running_[size_t(group)] = -1;
  if (signals::stop_requested()) begin_stop("a stop signal arrived");
  assign_or_park(group);
}

void Coordinator::assign_or_park(int group) {
  if (stopping_) return end_group(group);
  if (try_assign(group)) return;
  if (count().pending == 0) return end_group(group);
  state_[size_t(group)] = GroupState::Parked;  // until an artifact appears or its producer ends
}

void Coordinator::retry_parked(bool force) {
  const double t = now_s();
  if (!force && t - last_parked_check_ < 0.5) return;
  last_parked_check_ = t;
  for (int g = 0; g < groups_; ++g)
    if (state_[size_t(g)] == GroupState::Parked) assign_or_park(g);
}

void Coordinator::begin_stop(const std::string& why) {
  if (stopping_) return;
  stopping_ = true;
  signals::request_stop();  // group 0's own run stops at its next step
  summary("stopping: " + why + "; every running run writes its checkpoint (rerun the sweep to continue)");
  for (int g = 0; g < groups_; ++g)
    if (running_[size_t(g)] >= 0) send_group(g, {{"t", "stop"}}, false);
}

void Coordinator::handle(int from, const std::string& text) {
  json m = json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.contains("t")) return;
  if (m["t"] == "result" && m.contains("prev") && m["prev"].is_object()) {
    record(Outcome::from_json(m["prev"]));
    return;
  }
  if (m["t"] == "next") {
    const int g = m.value("g", from / rpr_);
    if (m.contains("prev") && m["prev"].is_object()) {
      Outcome o = Outcome::from_json(m["prev"]);
      on_request(g, &o);
    } else {
      on_request(g, nullptr);
    }
  }
}

void Coordinator::serve() {
  if (signals::stop_requested() && !stopping_) begin_stop("a stop signal arrived");
  if (mb_) {
    int from = -1;
    std::string msg;
    while (mb_->poll(-1, &from, &msg)) handle(from, msg);
  }
  retry_parked(false);
}

int64_t Coordinator::next_for_self(const Outcome* prev) {
  self_assigned_ = -2;
  on_request(0, prev);
  auto pause = std::chrono::milliseconds(1);
  while (self_assigned_ == -2) {
    serve();
    retry_parked(true);
    if (self_assigned_ != -2) break;
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(50)) pause *= 2;
  }
  return self_assigned_;
}

int Coordinator::finish() {
  auto all_ended = [&] {
    for (GroupState s : state_)
      if (s != GroupState::Ended) return false;
    return true;
  };
  while (!all_ended()) {
    serve();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Counts c = count();
  const int failed = c.failed, left = c.pending + c.running;
  const int code = stopping_ ? kExitPreempted : failed > 0 ? kExitRunsFailed : kExitOk;
  header_["finished"] = iso_now();
  write_json(stopping_ ? "preempted" : failed ? "finished with failures" : left ? "incomplete" : "done");
  summary(stopping_ ? "stopped; rerun the same command to continue" : "finished");
  for (int r = 1; r < groups_ * rpr_; ++r)
    if (mb_) mb_->send(r, json{{"t", "over"}, {"code", code}}.dump());
  return code;
}

void Coordinator::write_json(const std::string& status) const {
  json j = header_;
  j["status"] = status;
  j["updated"] = iso_now();
  json runs = json::array();
  std::map<std::string, int> counts;
  for (const auto& r : runs_) {
    ++counts[r.status];
    json e = {{"index", r.spec.index}, {"dataset", r.spec.dataset}, {"model", r.spec.model}, {"seed", r.spec.seed},
              {"dir", r.spec.dir},     {"status", r.status},        {"seconds", r.seconds},  {"acc", opt(r.acc)},
              {"nmi", opt(r.nmi)},     {"ari", opt(r.ari)}};
    if (!r.error.empty()) e["error"] = r.error;
    if (!r.artifacts.empty()) e["artifacts"] = r.artifacts;
    if (r.group >= 0) e["group"] = r.group;
    runs.push_back(e);
  }
  j["counts"] = counts;
  j["runs"] = runs;
  std::error_code ec;
  fs::create_directories(fs::path(json_path_).parent_path(), ec);
  try {
    write_file_atomic(json_path_, j.dump(2) + "\n");
  } catch (const DataError&) {
    // A full disk must not stop the training; the next write retries.
  }
}

Coordinator::Counts Coordinator::count() const {
  Counts c;
  for (const auto& r : runs_) {
    c.done += r.status == "done";
    c.failed += r.status == "failed";
    c.running += r.status == "running";
    c.pending += r.status == "pending" || r.status == "preempted";
  }
  return c;
}

void Coordinator::summary(const std::string& event) const {
  const auto [done, failed, running, pending] = count();
  std::string eta;
  if (ran_count_ > 0 && (pending + running) > 0 && !stopping_) {
    const double per_run = ran_seconds_ / ran_count_;
    eta = " | ETA " + fmt_duration(per_run * (pending + 0.5 * running) / std::max(1, groups_));
  }
  std::cout << "[sweep " << fmt_duration(now_s() - start_time_) << "] " << done << "/" << runs_.size() << " done, "
            << running << " running, " << pending << " pending, " << failed << " failed" << eta << " | " << event
            << std::endl;
}

// ---------------------------------------------------------------------------------------
bool Worker::handle(const std::string& text, int64_t* index) {
  json m = json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.contains("t")) return false;
  const std::string t = m["t"];
  if (t == "stop") {
    signals::request_stop();
    return false;
  }
  if (t == "run") {
    *index = m["i"].get<int64_t>();
    with_ = m.value("with", std::vector<int64_t>{});
    return true;
  }
  if (t == "end") {
    *index = -1;
    return true;
  }
  if (t == "over") {
    exit_code_ = m.value("code", 1);
    *index = -1;
    return true;
  }
  return false;
}

void Worker::report(const Outcome& o) {
  if (leader_) mb_->send(0, json{{"t", "result"}, {"prev", o.to_json()}}.dump());
}

int64_t Worker::next(const Outcome* prev) {
  if (leader_) {
    json m = {{"t", "next"}, {"g", group_}};
    m["prev"] = prev ? prev->to_json() : json(nullptr);
    mb_->send(0, m.dump());
  }
  int64_t index = -1;
  while (!handle(mb_->wait_from(0), &index)) {
  }
  return index;
}

void Worker::poll_stop() {
  std::string msg;
  int from = -1;
  int64_t ignored = 0;
  while (mb_->poll(0, &from, &msg)) handle(msg, &ignored);
}

int Worker::wait_exit_code() {
  int64_t ignored = 0;
  while (exit_code_ < 0) handle(mb_->wait_from(0), &ignored);
  return exit_code_;
}

}  // namespace mixvae::sweep
