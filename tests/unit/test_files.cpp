// core/files: the run-directory lock and the clean-up of interrupted atomic writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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

TEST(Files, OneLineHidesControlBytes) {
  EXPECT_EQ(mixvae::one_line(std::string("a\nb\tc\0d\x1b[2J", 11)), "a b c?d?[2J");
}
