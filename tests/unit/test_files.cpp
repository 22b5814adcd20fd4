// core/files: the run-directory lock and the clean-up of interrupted atomic writes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/errors.h"
#include "core/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using mixvae::DirLock;

TEST(Files, ASecondRunCannotTakeTheDirectory) {
  mixvae::test::TempDir d;
  DirLock a = DirLock::acquire(d.path());
  ASSERT_TRUE(a.held());
  try {
    DirLock b = DirLock::acquire(d.path());
    FAIL() << "a second lock on the same directory was granted";
  } catch (const mixvae::UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("another mixvae run is writing to this directory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;  // names the holder
  }
  a = DirLock();  // released
  EXPECT_NO_THROW(DirLock::acquire(d.path()));
}

TEST(Files, StaleTemporariesAreRemovedAndNothingElse) {
  mixvae::test::TempDir d;
  for (const char* name : {"checkpoint.h5.tmp.123", "config.ini.tmp.9", "checkpoint.h5", "checkpoint.prev.h5",
                           "data.tmp.h5", "x.tmp.", "a.tmp.12b", ".tmp.5", "metrics.jsonl"})
    std::ofstream(d / name) << "x";
  EXPECT_EQ(mixvae::remove_stale_temporaries(d.path()), 2);
  std::vector<std::string> left = mixvae::test::entries(d.path());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{".tmp.5", "a.tmp.12b", "checkpoint.h5", "checkpoint.prev.h5", "data.tmp.h5",
                                            "metrics.jsonl", "x.tmp."}));
}

namespace {
// A pid that no process has (a child that has exited and been reaped).
pid_t dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}
void age(const std::string& path, int seconds) {  // mtime `seconds` ago
  struct timespec t[2];
  t[0].tv_sec = t[1].tv_sec = std::time(nullptr) - seconds;
  t[0].tv_nsec = t[1].tv_nsec = 0;
  ::utimensat(AT_FDCWD, path.c_str(), t, 0);
}
}  // namespace

// Atomic writes of the same file by two nodes (or containers) with the same pid, or two
// writes of one process, must not share a temporary file (array slices writing one
// artifact on a shared file system did: "PATH.tmp.<pid>").
TEST(Files, TemporaryNamesAreUniquePerWriteAndNameTheHost) {
  std::set<std::string> names;
  for (int i = 0; i < 100; ++i) names.insert(mixvae::temporary_path("/d/a.h5"));
  EXPECT_EQ(names.size(), 100u);
  const std::string t = *names.begin();
  EXPECT_EQ(t.rfind("/d/a.h5.tmp." + std::to_string(::getpid()) + ".", 0), 0u) << t;
  EXPECT_EQ(t.substr(t.size() - mixvae::host_name().size() - 1), "." + mixvae::host_name()) << t;
}

// The clean-up knows whose temporaries are safe to remove: this host's of a process that is
// gone (or of this one), another host's only when nobody has written to it for a while.
TEST(Files, StaleTemporariesOfTheNewNamesGoWhenTheirWriterIsGone) {
  mixvae::test::TempDir d;
  const std::string me = std::to_string(::getpid()), host = mixvae::host_name();
  const std::string dead = d / ("checkpoint.h5.tmp." + std::to_string(dead_pid()) + ".0a1b2c3d-7." + host),
                    live = d / ("checkpoint.h5.tmp.1.0a1b2c3d-7." + host),  // pid 1: alive
      mine = d / ("metrics.jsonl.tmp." + me + ".0a1b2c3d-9." + host),
                    other_fresh = d / "config.ini.tmp.12.ffffffff-0.node-b.cluster",
                    other_old = d / "checkpoint.prev.h5.tmp.12.ffffffff-1.node-b.cluster";
  for (const auto& f : {dead, live, mine, other_fresh, other_old}) std::ofstream(f) << "x";
  age(other_old, mixvae::kStaleTemporarySeconds + 60);
  EXPECT_EQ(mixvae::remove_stale_temporaries(d.path()), 3);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(mine));
  EXPECT_FALSE(fs::exists(other_old));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other_fresh));
}

// The lock that makes an artifact once across processes: exclusive, names its owner,
// released on destruction, taken over from an owner that is gone.
TEST(Files, LockFileIsExclusiveAndStaleLocksAreTakenOver) {
  mixvae::test::TempDir d;
  const std::string path = mixvae::lock_file_of(d / "vade-ae-0123.h5");
  EXPECT_EQ(path, d / "vade-ae-0123.h5.lock");
  {
    mixvae::LockFile a;
    ASSERT_TRUE(mixvae::LockFile::try_take(path, &a));
    EXPECT_TRUE(a.held());
    mixvae::LockFile b;
    std::string holder;
    EXPECT_FALSE(mixvae::LockFile::try_take(path, &b, &holder));
    EXPECT_EQ(holder, "host " + mixvae::host_name() + ", pid " + std::to_string(::getpid()));
    EXPECT_TRUE(mixvae::lock_file_live(path));
  }
  EXPECT_FALSE(fs::exists(path));  // released
  // An owner on this host that is gone: stale at once.
  std::ofstream(path) << "host " << mixvae::host_name() << ", pid " << dead_pid() << "\n";
  EXPECT_FALSE(mixvae::lock_file_live(path));
  mixvae::LockFile c;
  EXPECT_TRUE(mixvae::LockFile::try_take(path, &c));
  c.release();
  // An owner on another host: live while its heartbeat is fresh, stale after.
  std::ofstream(path) << "host node-b.cluster, pid 12\n";
  EXPECT_TRUE(mixvae::lock_file_live(path));
  EXPECT_FALSE(mixvae::LockFile::try_take(path, &c));
  age(path, mixvae::kLockFileStaleSeconds + 60);
  EXPECT_TRUE(mixvae::LockFile::try_take(path, &c));
  EXPECT_TRUE(c.held());
}

TEST(Files, OneLineHidesControlBytes) {
  EXPECT_EQ(mixvae::one_line(std::string("a\nb\tc\0d\x1b[2J", 11)), "a b c?d?[2J");
}
