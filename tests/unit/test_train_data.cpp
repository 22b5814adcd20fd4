// The batch plan: every sample once per epoch, the global batch the configured size at
// any world size, and the same global batches in global mode whatever the world size.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "data/schema.h"
#include "train/train_data.h"

using namespace mixvae;

namespace {
train::TrainData fake(int64_t n, int world, bool global) {
  train::TrainData d;
  d.n_global = n;
  d.d = 1;
  d.global_mode = global;
  for (int r = 0; r < world; ++r) d.shards.push_back(data::shard_range(n, r, world));
  return d;
}
}  // namespace

TEST(EpochPlan, ShardModeVisitsEverySampleOnceWithGlobalBatch) {
  for (int64_t n : {1000, 1001, 997}) {
    for (int w : {1, 2, 3}) {
      auto d = fake(n, w, false);
      std::vector<std::set<int64_t>> seen(w);
      int64_t steps = -1, total = 0;
      std::map<int64_t, int64_t> sums;  // rows of all ranks per step
      for (int r = 0; r < w; ++r) {
        train::EpochPlan plan(d, r, w, 100, 42 + r);
        if (steps < 0) steps = plan.steps();
        EXPECT_EQ(plan.steps(), steps);
        for (int64_t s = 0; s < plan.steps(); ++s) {
          auto sl = plan.step(s);
          EXPECT_EQ(sl.global_rows, std::min<int64_t>(100, n - s * 100));
          if (r == 0) total += sl.global_rows;
          sums[s] += sl.rows.size(0);
          for (int64_t i = 0; i < sl.rows.size(0); ++i) {
            EXPECT_TRUE(seen[r].insert(sl.rows[i].item<int64_t>()).second);
          }
        }
        EXPECT_EQ(int64_t(seen[r].size()), d.shards[r].second - d.shards[r].first);
      }
      EXPECT_EQ(total, n);
      for (auto [s, rows] : sums) EXPECT_EQ(rows, std::min<int64_t>(100, n - s * 100)) << "step " << s;
    }
  }
}

TEST(EpochPlan, GlobalModeBatchesDoNotDependOnWorldSize) {
  const int64_t n = 1234;
  auto d1 = fake(n, 1, true);
  train::EpochPlan one(d1, 0, 1, 100, 7);
  for (int w : {2, 3}) {
    auto dw = fake(n, w, true);
    for (int64_t s = 0; s < one.steps(); ++s) {
      std::vector<int64_t> joined;
      for (int r = 0; r < w; ++r) {
        train::EpochPlan p(dw, r, w, 100, 7);
        ASSERT_EQ(p.steps(), one.steps());
        auto sl = p.step(s);
        for (int64_t i = 0; i < sl.rows.size(0); ++i) joined.push_back(sl.rows[i].item<int64_t>());
      }
      auto whole = one.step(s).rows;
      ASSERT_EQ(int64_t(joined.size()), whole.size(0));
      for (size_t i = 0; i < joined.size(); ++i) EXPECT_EQ(joined[i], whole[i].item<int64_t>());
    }
  }
}

// A mid-epoch checkpoint of W ranks resumed on W' ranks (a requeue on another number of
// nodes): the rows the W ranks trained before the stop plus the rows the W' ranks train
// after it are every row of the data set exactly once, and every global batch keeps its
// size. Counted row by row, for stops early, midway and at the last step.
TEST(EpochPlan, ResumedOnAnotherWorldSizeTrainsEveryRowOnce) {
  const int64_t batch = 100;
  auto seed_of = [](int r) { return uint64_t(1000 + 7 * r); };
  for (bool global : {false, true})
    for (int64_t n : {1000, 1001, 997})
      for (int from : {1, 2, 3, 4})
        for (int to : {1, 2, 3, 4}) {
          const int64_t steps = (n + batch - 1) / batch;
          for (int64_t stop : {int64_t(1), steps / 2, steps - 1}) {
            const std::string where = std::string(global ? "global" : "shard") + " n=" + std::to_string(n) +
                                      " W=" + std::to_string(from) + "->" + std::to_string(to) +
                                      " stop=" + std::to_string(stop);
            std::vector<int> count(size_t(n), 0);
            std::map<int64_t, int64_t> per_step;
            auto old_data = fake(n, from, global), new_data = fake(n, to, global);
            for (int r = 0; r < from; ++r) {
              auto plan = train::epoch_plan(old_data, r, from, batch, seed_of);
              for (int64_t s = 0; s < stop; ++s) {
                auto sl = plan.step(s);
                per_step[s] += sl.rows.size(0);
                for (int64_t i = 0; i < sl.rows.size(0); ++i)
                  ++count[size_t(sl.rows[i].item<int64_t>() + (global ? 0 : old_data.shards[r].first))];
              }
            }
            for (int r = 0; r < to; ++r) {
              auto plan = train::epoch_plan(new_data, r, to, batch, seed_of, stop, from);
              ASSERT_EQ(plan.steps(), steps) << where;
              for (int64_t s = stop; s < steps; ++s) {
                auto sl = plan.step(s);
                EXPECT_EQ(sl.global_rows, std::min(batch, n - s * batch)) << where;
                per_step[s] += sl.rows.size(0);
                for (int64_t i = 0; i < sl.rows.size(0); ++i)
                  ++count[size_t(sl.rows[i].item<int64_t>() + (global ? 0 : new_data.shards[r].first))];
              }
            }
            int64_t wrong = 0;
            for (int c : count) wrong += c != 1;
            EXPECT_EQ(wrong, 0) << where << ": rows not trained exactly once";
            for (int64_t s = 0; s < steps; ++s)
              EXPECT_EQ(per_step[s], std::min(batch, n - s * batch)) << where << " step " << s;
          }
        }
}

TEST(EpochPlan, PermutationDependsOnlyOnSeed) {
  EXPECT_EQ(train::permutation(50, 3), train::permutation(50, 3));
  EXPECT_NE(train::permutation(50, 3), train::permutation(50, 4));
  auto p = train::permutation(1000, 9);
  std::set<int64_t> s(p.begin(), p.end());
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_EQ(*s.begin(), 0);
  EXPECT_EQ(*s.rbegin(), 999);
}
