// mixvae report: run-tree scanning, statistics over seeds, best marking, the paper
// columns, the Markdown/CSV/JSON renderings, errors and the gnuplot plots, on small fake
// run trees written here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sweep/plot.h"
#include "sweep/report.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mixvae::sweep {
namespace {

using test::TempDir;

void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A finished run; acc < 0 writes null scores (unlabelled data).
void finished(const TempDir& t, const std::string& rel, double acc, double nmi = 0.5, double ari = 0.4,
              double seconds = 10) {
  json j = {{"acc", acc},      {"nmi", nmi}, {"ari", ari},      {"seconds", seconds}, {"epochs", 20},
            {"world_size", 2}, {"seed", 0},  {"model", "vade"}, {"dataset", "mnist"}, {"loss", 100.5}};
  if (acc < 0) j["acc"] = j["nmi"] = j["ari"] = nullptr;
  write(t / (rel + "/result.json"), j.dump(2));
}

void status(const TempDir& t, const std::string& rel, const std::string& s, const std::string& error = "") {
  json j = {{"status", s}, {"updated", "2025-01-01T00:00:00Z"}};
  if (!error.empty()) j["error"] = error;
  write(t / (rel + "/status.json"), j.dump());
}

RunRecord run(const std::string& model, const std::string& dataset, int64_t seed, std::optional<double> acc,
              RunStatus st = RunStatus::Finished) {
  RunRecord r;
  r.model = model;
  r.dataset = dataset;
  r.seed = seed;
  r.dir = dataset + "/" + model + "/seed-" + std::to_string(seed);
  r.status = st;
  if (st == RunStatus::Finished) {
    r.acc = acc;
    r.nmi = acc ? std::optional<double>(*acc - 0.1) : std::nullopt;
    r.ari = acc ? std::optional<double>(*acc - 0.2) : std::nullopt;
    r.seconds = 100;
  }
  return r;
}

// ---------------------------------------------------------------------------------------
TEST(ReportStats, MeanSampleStdMedianByHand) {
  // 0.7 0.8 0.9 1.0: mean 0.85, deviations +-0.05, +-0.15: sum of squares 0.05, / (n-1 = 3).
  auto s = summarize({0.9, 0.8, 0.7, 1.0});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->n, 4);
  EXPECT_NEAR(s->mean, 0.85, 1e-12);
  ASSERT_TRUE(s->std);
  EXPECT_NEAR(*s->std, std::sqrt(0.05 / 3), 1e-12);
  EXPECT_NEAR(s->median, 0.85, 1e-12);  // even n: the mean of the middle two
  EXPECT_DOUBLE_EQ(s->min, 0.7);
  EXPECT_DOUBLE_EQ(s->max, 1.0);

  auto odd = summarize({0.5, 0.1, 0.3});
  EXPECT_DOUBLE_EQ(odd->median, 0.3);
  EXPECT_NEAR(*odd->std, 0.2, 1e-12);  // deviations -0.2, 0, 0.2: 0.08 / 2 = 0.04

  auto one = summarize({0.42});
  EXPECT_EQ(one->n, 1);
  EXPECT_FALSE(one->std) << "the std of one seed is undefined, not 0";
  EXPECT_DOUBLE_EQ(one->median, 0.42);
  EXPECT_FALSE(summarize({}));
}

TEST(ReportScan, FinishedFailedUnfinishedAndOnlyFinishedAggregate) {
  TempDir t;
  finished(t, "mnist/vade/seed-0", 0.7, 0.6, 0.5, 10);
  finished(t, "mnist/vade/seed-1", 0.8, 0.7, 0.6, 20);
  finished(t, "mnist/vade/seed-2", 0.9, 0.8, 0.7, 60);
  status(t, "mnist/vade/seed-2", "failed", "stale");  // result.json wins: finished
  status(t, "mnist/vade/seed-3", "failed", "CUDA out of memory, rank 1");
  status(t, "mnist/vade/seed-4", "running");
  // A live run's log already shows a high ACC: it must not enter the table.
  write(t / "mnist/vade/seed-4/metrics.jsonl", R"({"stage":"train","epoch":1,"loss":1,"acc":0.99})"
                                               "\n");
  status(t, "mnist/vade/seed-5", "preempted");
  fs::create_directories(t / "mnist/vade/seed-6");  // started, nothing written yet
  status(t, "mnist/vade/seed-8", "done");           // "done" without result.json: unfinished
  // Not runs: other folders, hidden folders, files, the pretraining artifacts.
  fs::create_directories(t / "mnist/vade/notes");
  finished(t, "mnist/.trash/seed-0", 0.1);
  finished(t, "mnist/vade/.seed-9", 0.1);
  write(t / "pretrained/ae-1234.h5", "x");
  write(t / "README", "x");
  // sweep.json lists seed-7, whose folder does not exist yet, with RUNS as the sweep named it.
  json sweep = {{"name", "t"},
                {"runs",
                 {{{"dataset", "mnist"},
                   {"model", "vade"},
                   {"seed", 7},
                   {"dir", "runs/x/mnist/vade/seed-7"},
                   {"status", "pending"}},
                  {{"dataset", "mnist"},
                   {"model", "vade"},
                   {"seed", 0},
                   {"dir", "runs/x/mnist/vade/seed-0"},
                   {"status", "done"}}}}};
  write(t / "sweep.json", sweep.dump());

  RunTree tree = scan_runs(t.path());
  const auto& runs = tree.runs;
  ASSERT_EQ(runs.size(), 9u);
  std::vector<int64_t> seeds;
  for (const auto& r : runs) seeds.push_back(r.seed);
  EXPECT_EQ(seeds, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(runs[2].status, RunStatus::Finished);
  EXPECT_EQ(runs[3].status, RunStatus::Failed);
  EXPECT_EQ(runs[3].error, "CUDA out of memory, rank 1");
  for (int i : {4, 5, 6, 7, 8}) EXPECT_EQ(runs[size_t(i)].status, RunStatus::Unfinished) << "seed " << i;
  EXPECT_EQ(runs[0].epochs, 20);
  EXPECT_EQ(runs[0].world_size, 2);

  Report rep = build_report(t.path(), tree);
  ASSERT_EQ(rep.cells.size(), 1u);
  const Cell& c = rep.cells[0];
  EXPECT_EQ(c.finished, 3);
  EXPECT_EQ(c.failed, 1);
  EXPECT_EQ(c.unfinished, 5);
  ASSERT_TRUE(c.metric[kAcc]);
  EXPECT_EQ(c.metric[kAcc]->n, 3);
  EXPECT_NEAR(c.metric[kAcc]->mean, 0.8, 1e-12);
  EXPECT_NEAR(*c.metric[kAcc]->std, 0.1, 1e-12);
  EXPECT_NEAR(c.metric[kAcc]->median, 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(c.metric[kAcc]->max, 0.9) << "the live run's 0.99 leaked into the table";
  EXPECT_NEAR(c.metric[kNmi]->mean, 0.7, 1e-12);
  EXPECT_NEAR(c.metric[kAri]->mean, 0.6, 1e-12);
  EXPECT_NEAR(*c.mean_seconds, 30, 1e-12);
  EXPECT_FALSE(c.best[kAcc]) << "one model is not best of anything";
}

TEST(ReportScan, OrderFollowsSweepJsonThenAlphabet) {
  TempDir t;
  finished(t, "har/vade/seed-0", 0.5);
  finished(t, "mnist/vade/seed-0", 0.5);
  finished(t, "mnist/kdvae/seed-0", 0.5);
  finished(t, "zoo/aegmm/seed-0", 0.5);
  finished(t, "mnist/vade/seed-10", 0.5);
  finished(t, "mnist/vade/seed-9", 0.5);
  json sweep = {{"runs",
                 {{{"dataset", "mnist"}, {"model", "vade"}, {"seed", 0}},
                  {{"dataset", "mnist"}, {"model", "kdvae"}, {"seed", 0}},
                  {{"dataset", "har"}, {"model", "vade"}, {"seed", 0}}}}};
  write(t / "sweep.json", sweep.dump());
  Report rep = build_report(t.path(), scan_runs(t.path()));
  EXPECT_EQ(rep.datasets, (std::vector<std::string>{"mnist", "har", "zoo"}));
  EXPECT_EQ(rep.models, (std::vector<std::string>{"vade", "kdvae", "aegmm"}));
  EXPECT_EQ(rep.runs[1].seed, 9) << "seeds sort as numbers";
  EXPECT_EQ(rep.runs[2].seed, 10);
}

TEST(ReportScan, WithoutSweepJsonRowsAndColumnsAreAlphabetical) {
  TempDir t;
  finished(t, "mnist/aegmm/seed-0", 0.5);
  finished(t, "har/kdvae/seed-0", 0.5);
  finished(t, "har/vade/seed-0", 0.5);
  RunTree tree = scan_runs(t.path());
  EXPECT_EQ(tree.datasets, (std::vector<std::string>{"har", "mnist"}));
  EXPECT_EQ(tree.models, (std::vector<std::string>{"aegmm", "kdvae", "vade"}));
  const std::string md = to_markdown(build_report(t.path(), tree));
  EXPECT_LT(md.find("| aegmm |"), md.find("| kdvae |"));
}

TEST(ReportScan, SliceListingsCountTheirMissingRuns) {
  TempDir t;
  finished(t, "mnist/vade/seed-0", 0.5);
  json slice = {{"runs", {{{"dataset", "mnist"}, {"model", "vade"}, {"seed", 1}, {"dir", "r/mnist/vade/seed-1"}}}}};
  write(t / "sweep.slice-1-of-2.json", slice.dump());
  auto runs = scan_runs(t.path()).runs;
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[1].status, RunStatus::Unfinished);
}

TEST(ReportScan, EmptyTreeHasNoRuns) {
  TempDir t;
  fs::create_directories(t / "mnist/vade");
  EXPECT_TRUE(scan_runs(t.path()).runs.empty());
}

TEST(ReportErrors, MissingRootAndGarbledJsonNameTheFile) {
  TempDir t;
  auto msg = test::data_error_of([&] { scan_runs(t / "nope"); });
  EXPECT_CONTAINS(msg, t / "nope");

  write(t / "mnist/vade/seed-0/result.json", "{\"acc\": 0.5,");
  msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "mnist/vade/seed-0/result.json");
  EXPECT_CONTAINS(msg, "not valid JSON");

  write(t / "mnist/vade/seed-0/result.json", R"({"acc": "0.5"})");
  msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "\"acc\" is string");

  write(t / "mnist/vade/seed-0/result.json", "[1, 2]");
  msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "expected a JSON object");

  finished(t, "mnist/vade/seed-0", 0.5);
  write(t / "mnist/vade/seed-1/status.json", "{\"status\": ");
  msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "seed-1/status.json");

  fs::remove_all(t / "mnist/vade/seed-1");
  write(t / "sweep.json", "{\"runs\": 3}");
  msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "sweep.json");
}

TEST(ReportTable, BestPerColumnAmongModelsWithValues) {
  std::vector<RunRecord> runs = {
      run("vade", "mnist", 0, 0.80),
      run("vade", "mnist", 1, 0.90),  // mean 0.85
      run("kdvae", "mnist", 0, 0.95),
      run("kdvae", "mnist", 1, 0.93),          // mean 0.94: best
      run("aegmm", "mnist", 0, std::nullopt),  // unlabelled: no value
      run("vade", "har", 0, 0.70),
      run("kdvae", "har", 0, 0.70),                        // tie: both best
      run("vade", "reuters", 0, 0.6),                      // alone: not marked
      run("kdvae", "reuters", 0, 0.9, RunStatus::Failed),  // failed: no value
  };
  Report rep = build_report("R", make_tree(runs));
  EXPECT_TRUE(rep.cell("kdvae", "mnist")->best[kAcc]);
  EXPECT_FALSE(rep.cell("vade", "mnist")->best[kAcc]);
  EXPECT_FALSE(rep.cell("aegmm", "mnist")->best[kAcc]);
  EXPECT_FALSE(rep.cell("aegmm", "mnist")->metric[kAcc]);
  EXPECT_EQ(rep.cell("aegmm", "mnist")->finished, 1);
  EXPECT_TRUE(rep.cell("vade", "har")->best[kAcc]);
  EXPECT_TRUE(rep.cell("kdvae", "har")->best[kAcc]);
  EXPECT_FALSE(rep.cell("vade", "reuters")->best[kAcc]);
  EXPECT_EQ(rep.cell("kdvae", "reuters")->failed, 1);
  EXPECT_EQ(rep.cell("aegmm", "har"), nullptr) << "no run, no cell";

  const std::string md = to_markdown(rep);
  // (These runs have no selection score: the pick column says "no pick".)
  EXPECT_CONTAINS(md, "| kdvae | **94.00 ± 1.41** | 93.00 / 94.00 / 95.00 | no pick |");
  EXPECT_CONTAINS(md, "| vade | 85.00 ± 7.07 | 80.00 / 85.00 / 90.00 | no pick | **70.00 ± –** |");
  EXPECT_CONTAINS(md, "| aegmm | n/a |  | no pick |  |  |  |  |  |  |");
  EXPECT_CONTAINS(md, "| 0 finished, 1 failed |");
  EXPECT_CONTAINS(md, "## Failed runs");

  const std::string csv = to_csv(rep);
  EXPECT_CONTAINS(csv, "kdvae,mnist,2,0,0,100,2,0.94,");
  std::istringstream lines(csv);
  std::string header, first;
  std::getline(lines, header);
  EXPECT_EQ(header.rfind("model,dataset,finished,failed,unfinished,mean_seconds,acc_n,acc_mean,acc_std,acc_min,"
                         "acc_median,acc_max,acc_best,nmi_n",
                         0),
            0u)
      << header;
  std::getline(lines, first);  // vade/mnist: not best
  EXPECT_CONTAINS(first, "vade,mnist,2,0,0,100,2,0.85,0.07071067812,0.8,0.85,0.9,0,");

  json j = json::parse(to_json(rep));
  EXPECT_EQ(j["models"], json({"vade", "kdvae", "aegmm"}));
  EXPECT_EQ(j["failed"], 1);
  bool saw = false;
  for (const auto& c : j["cells"]) {
    if (c["model"] == "kdvae" && c["dataset"] == "mnist") {
      saw = true;
      EXPECT_EQ(c["acc"]["best"], true);
      EXPECT_EQ(c["acc"]["n"], 2);
      EXPECT_NEAR(c["acc"]["mean"].get<double>(), 0.94, 1e-12);
    }
    if (c["model"] == "vade" && c["dataset"] == "har") {
      EXPECT_TRUE(c["acc"]["std"].is_null());
    }
    if (c["model"] == "aegmm") {
      EXPECT_TRUE(c["acc"].is_null());
    }
  }
  EXPECT_TRUE(saw);
  EXPECT_EQ(j["runs"].size(), runs.size());
}

TEST(ReportPaper, MatchStripsTrailingSuffixes) {
  PaperTable p(3);
  p[0].model = "vade", p[0].dataset = "mnist";
  p[1].model = "kdvae", p[1].dataset = "mnist";
  p[2].model = "vade-quick", p[2].dataset = "har";
  EXPECT_EQ(match_paper(p, "vade", "mnist"), &p[0]);
  EXPECT_EQ(match_paper(p, "vade-quick", "mnist"), &p[0]);
  EXPECT_EQ(match_paper(p, "kdvae-w2-quick", "mnist"), &p[1]);
  EXPECT_EQ(match_paper(p, "vade-quick", "har"), &p[2]) << "the exact name comes first";
  EXPECT_EQ(match_paper(p, "vade-quick-long", "har"), &p[2]);
  EXPECT_EQ(match_paper(p, "vade", "har"), nullptr) << "a suffix is only ever removed";
  EXPECT_EQ(match_paper(p, "vadex", "mnist"), nullptr);
  EXPECT_EQ(match_paper(p, "vade", "stl10"), nullptr);
  EXPECT_EQ(match_paper(p, "-vade", "mnist"), nullptr);
}

TEST(ReportPaper, ReadsPercentagesAndShowsTheColumn) {
  TempDir t;
  write(t / "p.csv",
        "model,dataset,acc,acc_std,nmi,ari,source\r\n"
        "vade,mnist,94.43,0.1,,,\"Table 2, k-DVAE paper\"\r\n"
        "\r\n"
        "kdvae,mnist,97.87,,88.5,,\r\n");
  PaperTable p = read_paper_csv(t / "p.csv");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NEAR(*p[0].metric[kAcc].mean, 0.9443, 1e-12);
  EXPECT_NEAR(*p[0].metric[kAcc].std, 0.001, 1e-12);
  EXPECT_FALSE(p[0].metric[kNmi].mean);
  EXPECT_EQ(p[0].source, "Table 2, k-DVAE paper");
  EXPECT_NEAR(*p[1].metric[kNmi].mean, 0.885, 1e-12);

  Report rep = build_report("R",
                            make_tree({run("vade-quick", "mnist", 0, 0.9), run("kdvae-quick", "mnist", 0, 0.95),
                                       run("gmvae", "mnist", 0, 0.8), run("vade-quick", "har", 0, 0.6)}),
                            &p, t / "p.csv");
  ASSERT_TRUE(rep.cell("vade-quick", "mnist")->paper);
  EXPECT_EQ(rep.cell("vade-quick", "mnist")->paper->model, "vade");
  EXPECT_FALSE(rep.cell("gmvae", "mnist")->paper);
  const std::string md = to_markdown(rep);
  EXPECT_CONTAINS(md, "| mnist paper |");
  EXPECT_CONTAINS(md, "| vade-quick | 90.00 ± – | 90.00 / 90.00 / 90.00 | no pick | 94.43 ± 0.10 |");
  EXPECT_CONTAINS(md, "| kdvae-quick | **95.00 ± –** | 95.00 / 95.00 / 95.00 | no pick | 97.87 |");
  EXPECT_CONTAINS(md, "| gmvae | 80.00 ± – | 80.00 / 80.00 / 80.00 | no pick |  |");
  EXPECT_EQ(md.find("har paper"), std::string::npos) << "no paper numbers for har, no column";
  EXPECT_NE(md.find("| mnist paper |", md.find("## NMI")), std::string::npos) << "kdvae has an NMI";
  EXPECT_EQ(md.find("| mnist paper |", md.find("## ARI")), std::string::npos) << "no ARI numbers for mnist";
  const std::string csv = to_csv(rep);
  EXPECT_CONTAINS(csv, ",paper_model,paper_acc,paper_acc_std,");
  EXPECT_CONTAINS(csv, ",vade,0.9443,0.001,,,,\n");
  json j = json::parse(to_json(rep));
  EXPECT_EQ(j["cells"][0]["paper"]["model"], "vade");
  EXPECT_TRUE(j["cells"][3]["paper"].is_null());  // gmvae/mnist
}

TEST(ReportPaper, BadFilesAreOneLineErrors) {
  TempDir t;
  auto err = [&](const std::string& text) {
    write(t / "p.csv", text);
    return test::data_error_of([&] { read_paper_csv(t / "p.csv"); });
  };
  EXPECT_CONTAINS(err("model,dataset,acc\nvade,mnist,0.9443\n"), "p.csv:2: acc 0.9443 is out of range");
  EXPECT_CONTAINS(err("model,dataset,acc\nvade,mnist,high\n"), "p.csv:2: acc 'high' is not a number");
  EXPECT_CONTAINS(err("model,dataset,accuracy\n"), "unknown column 'accuracy'");
  EXPECT_CONTAINS(err("model,acc\n"), "must name the columns model and dataset");
  EXPECT_CONTAINS(err("model,dataset,acc\nvade,mnist,90\nvade,mnist,91\n"), "p.csv:3: a second row");
  EXPECT_CONTAINS(err("model,dataset,acc\nvade,mnist,90,1\n"), "4 fields, the header has 3");
  EXPECT_CONTAINS(err("model,dataset,source\nvade,mnist,\"open\n"), "unterminated quoted field");
  EXPECT_CONTAINS(err(""), "empty");
  EXPECT_CONTAINS(test::data_error_of([&] { read_paper_csv(t / "none.csv"); }), "none.csv: cannot read");
}

TEST(ReportPaper, ShippedTable2File) {
  const char* root = std::getenv("MIXVAE_SOURCE_DIR");
  const std::string path = std::string(root ? root : MIXVAE_SOURCE_DIR_DEFAULT) + "/configs/sweeps/table2-paper.csv";
  PaperTable p = read_paper_csv(path);
  EXPECT_EQ(p.size(), 24u);  // 6 methods x 4 datasets
  const PaperEntry* kdvae = match_paper(p, "kdvae-quick", "mnist");
  ASSERT_NE(kdvae, nullptr);
  EXPECT_NEAR(*kdvae->metric[kAcc].mean, 0.9787, 1e-12);
  const PaperEntry* vade = match_paper(p, "vade", "har");
  ASSERT_NE(vade, nullptr);
  EXPECT_NEAR(*vade->metric[kAcc].mean, 0.8449, 1e-12);
}

TEST(ReportFormat, RunsCsvQuotesErrorsWithCommasAndQuotes) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"no\""), "\"say \"\"no\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "two lines");

  auto failed = run("vade", "mnist", 3, std::nullopt, RunStatus::Failed);
  failed.error = "out of memory, rank 1: \"cuda\"";
  Report rep = build_report("R", make_tree({run("vade", "mnist", 0, 0.75), failed}));
  const std::string csv = runs_csv(rep);
  EXPECT_EQ(csv,
            "dataset,model,seed,status,acc,nmi,ari,seconds,epochs,world_size,selection_criterion,selection,error\n"
            "mnist,vade,0,finished,0.75,0.65,0.55,100,,,,,\n"
            "mnist,vade,3,failed,,,,,,,,,\"out of memory, rank 1: \"\"cuda\"\"\"\n");
  EXPECT_CONTAINS(to_markdown(rep), "- mnist/vade/seed-3: out of memory, rank 1: \"cuda\"");
}

TEST(ReportFormat, ClustpyCsvHasClustpysLayoutAndAggregatesFinishedRunsOnly) {
  // Two datasets, two models; kdvae has no seed 1 on mnist and a failed seed 2 on har.
  auto slow = run("kdvae", "mnist", 0, 0.9);
  slow.seconds = 300;
  Report rep = build_report(
      "R", make_tree({run("vade", "mnist", 0, 0.8), run("vade", "mnist", 1, 0.6), slow, run("vade", "har", 2, 0.7),
                      run("kdvae", "har", 2, std::nullopt, RunStatus::Failed), run("kdvae", "har", 5, 0.5)}));
  const std::string csv = clustpy_csv(rep);
  // pandas' to_csv of a (dataset, repetition) x (algorithm, metric) frame: the level names
  // head the header rows, a blank for the second index column, no index-name row.
  EXPECT_EQ(csv,
            "algorithm,,vade,vade,vade,vade,kdvae,kdvae,kdvae,kdvae\n"
            "metric,,acc,nmi,ari,runtime,acc,nmi,ari,runtime\n"
            "mnist,0,0.8,0.7,0.6,100,0.9,0.8,0.7,300\n"
            "mnist,1,0.6,0.5,0.4,100,,,,\n"
            // mean and population std (np.std) over the finished runs: vade acc {0.8, 0.6}
            "mnist,mean,0.7,0.6,0.5,100,0.9,0.8,0.7,300\n"
            "mnist,std,0.1,0.1,0.1,0,0,0,0,0\n"
            "har,2,0.7,0.6,0.5,100,,,,\n"
            "har,5,,,,,0.5,0.4,0.3,100\n"
            "har,mean,0.7,0.6,0.5,100,0.5,0.4,0.3,100\n"
            "har,std,0,0,0,0,0,0,0,0\n");
}

TEST(ReportFormat, MarkdownEscapesPipes) {
  auto failed = run("a|b", "mnist", 0, std::nullopt, RunStatus::Failed);
  failed.error = "x | y";
  const std::string md = to_markdown(build_report("R", make_tree({failed})));
  EXPECT_CONTAINS(md, "| a\\|b |");
  EXPECT_CONTAINS(md, "x \\| y");
}

TEST(ReportWrite, AtomicAndNothingLeftOnFailure) {
  TempDir t;
  write_file_atomic(t / "a.txt", "one");
  write_file_atomic(t / "a.txt", "two");
  EXPECT_EQ(read(t / "a.txt"), "two");
  EXPECT_EQ(t.entries(), std::vector<std::string>{"a.txt"});
  auto msg = test::data_error_of([&] { write_file_atomic(t / "missing/b.txt", "x"); });
  EXPECT_CONTAINS(msg, "missing/b.txt: cannot write");
  EXPECT_EQ(t.entries(), std::vector<std::string>{"a.txt"});
}

TEST(ReportCurves, ReadsMetricsAndSkipsATornLastLine) {
  TempDir t;
  write(t / "run/metrics.jsonl", R"({"stage":"pretrain","stage_index":0,"epoch":1,"loss":120.5})"
                                 "\n"
                                 R"({"stage":"mixture_init","stage_index":1,"epoch":0,"acc":0.7})"
                                 "\n"
                                 R"({"stage":"train","stage_index":2,"epoch":1,"loss":99,"acc":0.75})"
                                 "\n"
                                 R"({"stage":"train","stage_i)");
  auto pts = read_metrics(t / "run");
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_EQ(pts[0].stage, "pretrain");
  EXPECT_DOUBLE_EQ(*pts[0].loss, 120.5);
  EXPECT_FALSE(pts[0].acc);
  EXPECT_FALSE(pts[1].loss);
  EXPECT_EQ(pts[2].stage_index, 2);
  EXPECT_DOUBLE_EQ(*pts[2].acc, 0.75);

  write(t / "bad/metrics.jsonl", "{\"loss\":1}\nnot json\n{\"loss\":2}\n");
  EXPECT_CONTAINS(test::data_error_of([&] { read_metrics(t / "bad"); }), "bad/metrics.jsonl:2: not a JSON object");
  EXPECT_CONTAINS(test::data_error_of([&] { read_metrics(t / "none"); }), "no such run directory");
  fs::create_directories(t / "empty");
  EXPECT_CONTAINS(test::data_error_of([&] { read_metrics(t / "empty"); }), "empty/metrics.jsonl: cannot read");
}

bool is_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in && std::string(magic, 8) == "\x89PNG\r\n\x1a\n";
}

TEST(ReportPlot, GnuplotDrawsBothPlots) {
  if (find_gnuplot().empty()) GTEST_SKIP() << "gnuplot is not installed (apt-get install gnuplot-nox)";
  TempDir t;
  Report rep = build_report(
      "R", make_tree({run("vade", "mnist", 0, 0.8), run("vade", "mnist", 1, 0.85), run("kdvae", "mnist", 0, 0.9),
                      run("vade", "har", 0, 0.6), run("kdvae", "har", 2, 0.5, RunStatus::Failed)}));
  EXPECT_EQ(plot_acc_per_seed(rep, t / "acc.png"), "");
  EXPECT_TRUE(is_png(t / "acc.png"));
  std::vector<CurvePoint> pts(4);
  pts[0] = {"pretrain", 0, 1, 120.0, std::nullopt};
  pts[1] = {"pretrain", 0, 2, 110.0, std::nullopt};
  pts[2] = {"mixture_init", 1, 0, std::nullopt, 0.7};
  pts[3] = {"train", 2, 1, 99.0, 0.75};
  EXPECT_EQ(plot_training_curves(pts, "run 'quoted'", t / "curves.png"), "");
  EXPECT_TRUE(is_png(t / "curves.png"));
  EXPECT_EQ(t.entries(), (std::vector<std::string>{"acc.png", "curves.png"})) << "temporary files left behind";
  // Nothing to draw: a reason, no file.
  EXPECT_CONTAINS(
      plot_acc_per_seed(build_report("R", make_tree({run("vade", "mnist", 0, std::nullopt)})), t / "none.png"),
      "nothing to plot");
  EXPECT_FALSE(fs::exists(t / "none.png"));
}

TEST(ReportPlot, WithoutGnuplotAPlotIsSkippedNotAnError) {
  TempDir t;
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", (t / "empty-bin").c_str(), 1);
  Report rep = build_report("R", make_tree({run("vade", "mnist", 0, 0.8)}));
  const std::string why = plot_acc_per_seed(rep, t / "acc.png");
  const std::string why2 = plot_training_curves({{"train", 0, 1, 1.0, 0.5}}, "r", t / "c.png");
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_CONTAINS(why, "gnuplot not found");
  EXPECT_CONTAINS(why2, "gnuplot not found");
  EXPECT_TRUE(t.entries().empty());
}

// ---------------------------------------------------------------------------------------
// The label-free pick

// A finished run with a selection score (criterion "elbo", higher is better).
RunRecord scored(const std::string& model, int64_t seed, std::optional<double> acc, std::optional<double> score,
                 const std::string& criterion = "elbo") {
  RunRecord r = run(model, "mnist", seed, acc);
  r.selection_criterion = criterion;
  r.selection = score;
  return r;
}

TEST(ReportPick, BestScoreWinsWhateverTheLabelsSay) {
  // Seed 1 has the best ELBO and the worst ACC: it is picked, ACC plays no part.
  std::vector<RunRecord> runs = {scored("vade", 0, 0.95, -90.0), scored("vade", 1, 0.60, -80.5),
                                 scored("vade", 2, 0.90, -85.0)};
  Pick p = pick_run(runs);
  ASSERT_TRUE(p.index) << p.reason;
  EXPECT_EQ(runs[*p.index].seed, 1);
  // Any labels give the same pick: every ACC/NMI/ARI changed or removed.
  for (auto& r : runs) {
    r.acc = r.acc ? std::optional<double>(1.0 - *r.acc) : std::nullopt;
    r.nmi = r.ari = std::nullopt;
  }
  EXPECT_EQ(*pick_run(runs).index, *p.index);
  // Lower-is-better criteria pick the smallest value.
  for (auto& r : runs) {
    r.selection_criterion = "loss";
    r.selection_higher_is_better = false;
    *r.selection = -*r.selection;
  }
  EXPECT_EQ(runs[*pick_run(runs).index].seed, 1);
}

TEST(ReportPick, TiesGoToTheLowestSeedInAnyOrder) {
  std::vector<RunRecord> runs = {scored("vade", 5, 0.7, -80.0), scored("vade", 2, 0.8, -80.0),
                                 scored("vade", 9, 0.9, -81.0)};
  EXPECT_EQ(runs[*pick_run(runs).index].seed, 2);
  std::swap(runs[0], runs[1]);
  EXPECT_EQ(runs[*pick_run(runs).index].seed, 2);
}

TEST(ReportPick, FailedAndUnfinishedRunsAreNeverPicked) {
  // A failed or unfinished run holding a (stale) better score stays out.
  RunRecord failed = scored("vade", 0, std::nullopt, -10.0), live = scored("vade", 1, std::nullopt, -20.0);
  failed.status = RunStatus::Failed;
  live.status = RunStatus::Unfinished;
  std::vector<RunRecord> runs = {failed, live, scored("vade", 2, 0.7, -90.0), scored("vade", 3, 0.8, -95.0)};
  EXPECT_EQ(runs[*pick_run(runs).index].seed, 2);
  // Nothing finished: no pick.
  Pick none = pick_run({failed, live});
  EXPECT_FALSE(none.index);
  EXPECT_EQ(none.reason, "no finished run");
}

TEST(ReportPick, MissingScoresAndMixedCriteriaAreNoPickWithAReason) {
  // An older result.json without "selection": the pick would be over some seeds only.
  RunRecord old = run("vade", "mnist", 4, 0.99);
  Pick p = pick_run({scored("vade", 0, 0.7, -90.0), old});
  EXPECT_FALSE(p.index);
  EXPECT_EQ(p.reason,
            "seed 4 has no selection score (an older result.json; `mixvae train --config RUN/config.ini --resume` "
            "scores a finished run without training it)");
  RunRecord old2 = run("vade", "mnist", 5, 0.5);
  EXPECT_CONTAINS(pick_run({old, old2}).reason, "seed 4, seed 5 have no selection score");
  // Different criteria are not comparable.
  p = pick_run({scored("vade", 0, 0.7, -90.0), scored("vade", 1, 0.7, -80.0, "max_elbo")});
  EXPECT_FALSE(p.index);
  EXPECT_EQ(p.reason, "the runs' selection criteria differ (elbo, max_elbo)");
  // A score that was not finite (null) is never picked; the others still are.
  std::vector<RunRecord> runs = {scored("vade", 0, 0.7, std::nullopt), scored("vade", 1, 0.6, -95.0)};
  EXPECT_EQ(runs[*pick_run(runs).index].seed, 1);
  p = pick_run({scored("vade", 0, 0.7, std::nullopt)});
  EXPECT_FALSE(p.index);
  EXPECT_EQ(p.reason, "no finished run has a finite selection score");
}

TEST(ReportPick, ScanReadsTheScoreAndRejectsAGarbledOne) {
  TempDir t;
  auto put = [&](const std::string& rel, double acc, const json& selection) {
    json j = {{"acc", acc}, {"nmi", 0.5}, {"ari", 0.4}, {"seconds", 10}};
    if (!selection.is_null()) j["selection"] = selection;
    write(t / (rel + "/result.json"), j.dump());
  };
  put("mnist/vade/seed-0", 0.9, {{"criterion", "elbo"}, {"value", -101.5}, {"higher_is_better", true}});
  put("mnist/vade/seed-1", 0.6, {{"criterion", "elbo"}, {"value", -99.25}, {"higher_is_better", true}});
  put("mnist/vade/seed-2", 0.8, {{"criterion", "elbo"}, {"value", nullptr}});  // not finite
  status(t, "mnist/vade/seed-3", "failed", "diverged");
  put("mnist/kdvae/seed-0", 0.7, nullptr);  // an older result.json
  Report rep = build_report(t.path(), scan_runs(t.path()));
  const Cell* vade = rep.cell("vade", "mnist");
  ASSERT_TRUE(vade && vade->pick) << (vade ? vade->no_pick : "no cell");
  EXPECT_EQ(vade->pick->seed, 1);
  EXPECT_DOUBLE_EQ(*vade->pick->selection, -99.25);
  EXPECT_DOUBLE_EQ(*vade->pick->acc, 0.6);
  const Cell* kdvae = rep.cell("kdvae", "mnist");
  ASSERT_TRUE(kdvae);
  EXPECT_FALSE(kdvae->pick);
  EXPECT_CONTAINS(kdvae->no_pick, "seed 0 has no selection score");

  // Markdown: the pick column beside mean ± std and min / median / max, and the pick table.
  const std::string md = to_markdown(rep);
  EXPECT_CONTAINS(md, "| model | mnist | mnist min / median / max | mnist label-free pick |");
  EXPECT_CONTAINS(md, "| vade | **76.67 ± 15.28** | 60.00 / 80.00 / 90.00 | 60.00 (seed 1) |");
  EXPECT_CONTAINS(md, "| kdvae | 70.00 ± – | 70.00 / 70.00 / 70.00 | no pick |");
  EXPECT_CONTAINS(md, "| vade | mnist | elbo | 1 | -99.2500 | 60.00 | 50.00 | 40.00 |");
  EXPECT_CONTAINS(md, "| kdvae | mnist | no pick: seed 0 has no selection score");
  // CSV and JSON carry it too.
  const std::string csv = to_csv(rep);
  EXPECT_CONTAINS(csv, ",pick_seed,pick_criterion,pick_score,pick_higher_is_better,pick_acc,pick_nmi,pick_ari,no_pick");
  EXPECT_CONTAINS(csv, ",1,elbo,-99.25,1,0.6,0.5,0.4,\n");
  EXPECT_CONTAINS(csv, ",,,,,,,,seed 0 has no selection score");
  json j = json::parse(to_json(rep));
  for (const auto& c : j["cells"]) {
    if (c["model"] == "vade") {
      EXPECT_EQ(c["pick"]["seed"], 1);
      EXPECT_EQ(c["pick"]["dir"], "mnist/vade/seed-1");
      EXPECT_EQ(c["pick"]["criterion"], "elbo");
      EXPECT_DOUBLE_EQ(c["pick"]["score"].get<double>(), -99.25);
      EXPECT_DOUBLE_EQ(c["pick"]["acc"].get<double>(), 0.6);
      EXPECT_TRUE(c["no_pick"].is_null());
    } else {
      EXPECT_TRUE(c["pick"].is_null());
      EXPECT_CONTAINS(c["no_pick"].get<std::string>(), "no selection score");
    }
  }
  for (const auto& r : j["runs"])
    if (r["model"] == "vade" && r["seed"] == 0)
      EXPECT_DOUBLE_EQ(r["selection"]["value"].get<double>(), -101.5);
    else if (r["model"] == "kdvae")
      EXPECT_TRUE(r["selection"].is_null());
  EXPECT_CONTAINS(runs_csv(rep), "mnist,vade,2,finished,0.8,0.5,0.4,10,,,elbo,,\n");

  // A garbled "selection" is one error naming the file.
  put("mnist/vade/seed-0", 0.9, json("elbo"));
  auto msg = test::data_error_of([&] { scan_runs(t.path()); });
  EXPECT_CONTAINS(msg, "mnist/vade/seed-0/result.json");
  EXPECT_CONTAINS(msg, "\"selection\" is string, expected an object");
  put("mnist/vade/seed-0", 0.9, {{"value", 1.0}});
  EXPECT_CONTAINS(test::data_error_of([&] { scan_runs(t.path()); }), "\"selection\" has no \"criterion\" string");
  put("mnist/vade/seed-0", 0.9, {{"criterion", "elbo"}, {"value", "high"}});
  EXPECT_CONTAINS(test::data_error_of([&] { scan_runs(t.path()); }), "\"value\" is string");
}

}  // namespace
}  // namespace mixvae::sweep
