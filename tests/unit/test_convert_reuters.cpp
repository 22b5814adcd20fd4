// Tests of the Reuters-10K converter (src/data/reuters) on small corpora written in the
// RCV1-v2 formats: LYRL2004 token files (".I <docid>", ".W", token lines, blank line) and
// rcv1-v2.topics.qrels ("<topic> <docid> 1"). Expected values come from the formulas of
// scikit-learn's TfidfTransformer and, for two corpora, from scikit-learn 1.2.1 and
// numpy 1.24 themselves (numbers hard-coded below; no Python at test time).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "data/reuters.h"
#include "data/schema.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;
using mixvae::test::error_of;
using mixvae::test::TempDir;

const char* const kTokenFiles[] = {"lyrl2004_tokens_test_pt0.dat", "lyrl2004_tokens_test_pt1.dat",
                                   "lyrl2004_tokens_test_pt2.dat", "lyrl2004_tokens_test_pt3.dat",
                                   "lyrl2004_tokens_train.dat"};

struct Doc {
  int64_t id;
  std::vector<std::string> lines;  // token lines of the .W block
};

// One token file: each record ".I id", ".W", its lines, then a blank line.
std::string token_file(const std::vector<Doc>& docs) {
  std::string s;
  for (const Doc& d : docs) {
    s += ".I " + std::to_string(d.id) + "\n.W\n";
    for (const std::string& l : d.lines) s += l + "\n";
    s += "\n";
  }
  return s;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void write_gz(const std::string& path, const std::string& text) {
  gzFile g = gzopen(path.c_str(), "wb");
  ASSERT_NE(g, nullptr);
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
}

class ConvertReuters : public ::testing::Test {
 protected:
  void SetUp() override {
    raw = tmp.file("raw");
    fs::create_directory(raw);
    fs::create_directory(tmp.file("out"));
    out = tmp.file("out/reuters.h5");
  }
  std::string path(const std::string& name) const { return raw + "/" + name; }

  // Seven kept documents spread over the five files in file order k0..k6, plus documents
  // that are dropped: two root topics (300), none of the four (302), not in the qrels (301).
  void write_seven() {
    write_text(path("rcv1-v2.topics.qrels"),
               "C15 201 1\nCCAT 201 1\nGCAT 202 1\nCCAT 300 1\nMCAT 300 1\nMCAT 203 1\nM14 203 1\n"
               "ECAT 204 1\nE12 302 1\nCCAT 205 1\nGCAT 206 1\nGDIP 206 1\nMCAT 207 1\n");
    write_text(
        path(kTokenFiles[0]),
        token_file({{201, {"alpha beta gamma"}}, {300, {"gamma gamma gamma gamma"}}, {202, {"beta beta", "delta"}}}));
    write_text(path(kTokenFiles[1]), token_file({{203, {"gamma gamma gamma alpha"}}}));
    write_text(path(kTokenFiles[2]), token_file({{301, {"zeta zeta zeta"}}, {204, {"delta epsilon"}}}));
    write_text(path(kTokenFiles[3]), token_file({{302, {"alpha"}}, {205, {"alpha alpha epsilon zeta"}}}));
    write_text(path(kTokenFiles[4]), token_file({{206, {"zeta beta"}}, {207, {"gamma delta", "zeta zeta"}}}));
  }

  // scikit-learn 1.2.1 on the seven kept documents, CountVectorizer(max_features=3) ->
  // columns alpha, beta, gamma (alpha, beta and zeta tie at 4 occurrences: alphabetical),
  // TfidfTransformer(norm='l2', sublinear_tf=True), times sqrt(3), as float32.
  const std::vector<std::vector<float>> sklearn_seven = {
      {1.0f, 1.0f, 1.0f},       {0.0f, 1.7320508f, 0.0f}, {0.74506813f, 0.0f, 1.5636091f}, {0.0f, 0.0f, 0.0f},
      {1.7320508f, 0.0f, 0.0f}, {0.0f, 1.7320508f, 0.0f}, {0.0f, 0.0f, 1.7320508f}};
  const std::vector<int64_t> seven_labels = {0, 1, 2, 3, 0, 1, 2};
  const std::vector<int64_t> seven_ids = {201, 202, 203, 204, 205, 206, 207};

  void expect_rows(const std::string& file, const std::vector<int64_t>& kept_index) {
    const DatasetInfo info = inspect(file);
    ASSERT_EQ(info.n, static_cast<int64_t>(kept_index.size()));
    ASSERT_EQ(info.d, 3);
    const Shard s = read_rows(info, 0, info.n);
    for (size_t r = 0; r < kept_index.size(); ++r) {
      EXPECT_EQ(s.y[r], seven_labels[kept_index[r]]) << "row " << r;
      for (int c = 0; c < 3; ++c)
        EXPECT_NEAR(s.x[r * 3 + c], sklearn_seven[kept_index[r]][c], 1e-6) << "row " << r << " column " << c;
    }
    h5::File f = h5::open_read(file);
    EXPECT_EQ(h5::read_attr_int(f, "first_document_id"), seven_ids[kept_index[0]]);
  }

  void expect_refused(const std::string& file, const std::string& phrase, ReutersOptions o = small()) {
    const std::string msg = error_of([&] { prepare_reuters(raw, o, out); });
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, phrase);
    EXPECT_TRUE(fs::is_empty(tmp.file("out"))) << "something left in the output directory";
  }

  static ReutersOptions small() {
    ReutersOptions o;
    o.docs = 3;
    o.vocabulary = 3;
    return o;
  }

  TempDir tmp;
  std::string raw, out;
};

TEST(ConvertReutersPermutation, MatchesRandomStatePermutation) {
  // numpy.random.RandomState(1234).permutation(n), numpy 1.24.2.
  EXPECT_EQ(numpy_legacy_permutation(10, 1234), (std::vector<int64_t>{7, 2, 9, 1, 0, 8, 4, 5, 6, 3}));
  EXPECT_EQ(numpy_legacy_permutation(7, 1234), (std::vector<int64_t>{2, 1, 6, 0, 4, 5, 3}));
  EXPECT_EQ(numpy_legacy_permutation(6, 1234), (std::vector<int64_t>{2, 1, 5, 0, 4, 3}));
  EXPECT_EQ(numpy_legacy_permutation(1, 1234), (std::vector<int64_t>{0}));
  EXPECT_TRUE(numpy_legacy_permutation(0, 1234).empty());
  const std::vector<int64_t> p10k = numpy_legacy_permutation(10000, 1234);
  EXPECT_EQ(std::vector<int64_t>(p10k.begin(), p10k.begin() + 8),
            (std::vector<int64_t>{2374, 1784, 6301, 1600, 7920, 6868, 9082, 9227}));
  // The 'dec' subset of the real corpus: the first rows of permutation(685071).
  const std::vector<int64_t> p = numpy_legacy_permutation(685071, 1234);
  EXPECT_EQ(std::vector<int64_t>(p.begin(), p.begin() + 8),
            (std::vector<int64_t>{367295, 597263, 224712, 522469, 208602, 639819, 122754, 43429}));
  EXPECT_EQ(std::vector<int64_t>(p.begin() + 9990, p.begin() + 10000),
            (std::vector<int64_t>{156283, 193314, 448770, 382361, 188838, 287283, 505493, 598937, 511979, 443399}));
  const std::vector<int64_t> q = numpy_legacy_permutation((1 << 20) + 3, 7);
  EXPECT_EQ(std::vector<int64_t>(q.begin(), q.begin() + 5),
            (std::vector<int64_t>{983479, 993910, 704221, 857278, 823622}));
}

TEST(ConvertReutersTokens, LikeCountVectorizer) {
  std::vector<std::string> t;
  // re.findall(r"(?u)\b\w\w+\b", text.lower()) gives the same list.
  reuters_tokenize(
      "Hello, world_1 a b2 \xC3\xBC"
      "ber-x 3.5e-001 x_",
      &t);
  EXPECT_EQ(t, (std::vector<std::string>{"hello", "world_1", "b2",
                                         "\xC3\xBC"
                                         "ber",
                                         "5e", "001", "x_"}));
}

TEST(ConvertReutersSubsetNames, RoundTrip) {
  EXPECT_EQ(parse_reuters_subset("dec"), ReutersSubset::kDec);
  EXPECT_EQ(parse_reuters_subset("dec-keras"), ReutersSubset::kDecKeras);
  EXPECT_EQ(reuters_subset_name(ReutersSubset::kDecKeras), "dec-keras");
  EXPECT_THROW(parse_reuters_subset("keras"), UsageError);
}

// Three kept documents, vocabulary capped at 2, TF-IDF computed by hand.
TEST_F(ConvertReuters, HandComputedTfIdfOfThreeDocuments) {
  write_text(path("rcv1-v2.topics.qrels"), "GCAT 11 1\nECAT 12 1\nCCAT 13 1\nGCAT 13 1\nMCAT 14 1\n");
  write_text(path(kTokenFiles[0]), token_file({{11, {"apple banana apple"}}}));
  write_text(path(kTokenFiles[1]), token_file({{12, {"cherry banana", "cherry"}}}));
  write_text(path(kTokenFiles[2]), token_file({{13, {"apple apple apple apple"}}}));  // dropped: 2 topics
  write_text(path(kTokenFiles[3]), "");
  write_text(path(kTokenFiles[4]), token_file({{14, {"cherry Durian x"}}}));
  // Kept (file order): 11 GCAT, 12 ECAT, 14 MCAT. Totals: cherry 3, apple 2, banana 2,
  // durian 1 -> cap 2 keeps cherry and apple (apple before banana at 2). df: apple 1, cherry 2.
  ReutersOptions o;
  o.subset = ReutersSubset::kDecKeras;
  o.docs = 3;
  o.vocabulary = 2;
  // The empty test_pt3 file holds no records.
  EXPECT_CONTAINS(error_of([&] { prepare_reuters(raw, o, out); }), "holds no '.I <docid>' records");
  write_text(path(kTokenFiles[3]), token_file({{99, {"unlisted"}}}));
  prepare_reuters(raw, o, out);

  const DatasetInfo info = inspect(out);
  ASSERT_EQ(info.n, 3);
  ASSERT_EQ(info.d, 2);
  EXPECT_EQ(info.num_classes, 4);
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "vocabulary"), "apple cherry");
  EXPECT_EQ(h5::read_attr_int(f, "num_kept_documents"), 3);
  EXPECT_EQ(h5::read_attr_string(f, "subset"), "dec-keras");

  // Doc 11: apple x2. Doc 12: cherry x2. Doc 14: cherry x1. One kept term each: after the
  // L2 norm each row is sqrt(2) in its column whatever the idf. permutation(3) with seed
  // 1234 is the identity, so the rows are in file order.
  const Shard s = read_rows(info, 0, 3);
  EXPECT_EQ(s.y, (std::vector<int64_t>{1, 3, 2}));
  EXPECT_NEAR(s.x[0], std::sqrt(2.0), 1e-6);
  EXPECT_EQ(s.x[1], 0.0f);
  EXPECT_EQ(s.x[2], 0.0f);
  EXPECT_NEAR(s.x[3], std::sqrt(2.0), 1e-6);
  EXPECT_EQ(s.x[4], 0.0f);
  EXPECT_NEAR(s.x[5], std::sqrt(2.0), 1e-6);

  // Now with both terms in a document the idf matters.
  write_text(path(kTokenFiles[1]), token_file({{12, {"cherry banana apple", "cherry"}}}));
  write_text(path(kTokenFiles[4]), token_file({{14, {"cherry Durian x apple"}}}));
  fs::remove(out);
  prepare_reuters(raw, o, out);
  // Totals: apple 4, cherry 3, banana 2, durian 1 -> apple, cherry. df: apple 3, cherry 2.
  const double n = 3;
  const double idf_apple = std::log((1 + n) / (1 + 3)) + 1, idf_cherry = std::log((1 + n) / (1 + 2)) + 1;
  auto expect_row = [&](const Shard& t, int r, double w_apple, double w_cherry) {
    const double norm = std::sqrt(w_apple * w_apple + w_cherry * w_cherry);
    EXPECT_NEAR(t.x[r * 2], w_apple / norm * std::sqrt(2.0), 1e-6) << "row " << r;
    EXPECT_NEAR(t.x[r * 2 + 1], w_cherry / norm * std::sqrt(2.0), 1e-6) << "row " << r;
  };
  const Shard t = read_rows(inspect(out), 0, 3);
  expect_row(t, 0, (1 + std::log(2.0)) * idf_apple, 0);
  expect_row(t, 1, 1 * idf_apple, (1 + std::log(2.0)) * idf_cherry);  // tf = 1 + ln(count)
  expect_row(t, 2, 1 * idf_apple, 1 * idf_cherry);
  // scikit-learn 1.2.1 on the same three documents.
  EXPECT_NEAR(t.x[2], 0.58959221, 1e-6);
  EXPECT_NEAR(t.x[3], 1.28544974, 1e-6);
  EXPECT_NEAR(t.x[4], 0.86741572, 1e-6);
  EXPECT_NEAR(t.x[5], 1.11695567, 1e-6);
}

TEST_F(ConvertReuters, FiveDocumentsAgainstScikitLearn) {
  // scikit-learn 1.2.1, CountVectorizer(max_features=4): columns apple banana cherry date
  // (date and egg tie at 2: alphabetical), TfidfTransformer(norm='l2', sublinear_tf=True).
  write_text(path("rcv1-v2.topics.qrels"), "CCAT 1 1\nCCAT 2 1\nGCAT 2 1\nMCAT 3 1\nECAT 4 1\nGCAT 5 1\nCCAT 6 1\n");
  write_text(path(kTokenFiles[0]), token_file({{1, {"apple banana apple"}}, {2, {"fig fig"}}}));
  write_text(path(kTokenFiles[1]), token_file({{3, {"banana cherry"}}}));
  write_text(path(kTokenFiles[2]), token_file({{4, {"cherry cherry", "cherry date"}}}));
  write_text(path(kTokenFiles[3]), token_file({{5, {"apple date x"}}}));
  write_text(path(kTokenFiles[4]), token_file({{6, {"Egg egg banana"}}}));
  ReutersOptions o;
  o.docs = 5;
  o.vocabulary = 4;
  prepare_reuters(raw, o, out);
  const DatasetInfo info = inspect(out);
  const Shard s = read_rows(info, 0, info.n);
  // Rows: permutation(5) = [4 0 1 2 3] of the kept documents 1, 3, 4, 5, 6.
  const std::vector<std::vector<float>> expected = {{0, 2, 0, 0},
                                                    {1.7957927225f, 0.8804138219f, 0, 0},
                                                    {0, 1.2774211551f, 1.5388941459f, 0},
                                                    {0, 0, 1.805500296f, 0.860330565f},
                                                    {1.4142135624f, 0, 0, 1.4142135624f}};
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(s.x[r * 4 + c], expected[r][c], 1e-6) << "row " << r << " col " << c;
  EXPECT_EQ(s.y, (std::vector<int64_t>{0, 0, 2, 3, 1}));
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "vocabulary"), "apple banana cherry date");
  EXPECT_EQ(info.name, "reuters5");
}

TEST_F(ConvertReuters, DecSubsetPermutesAllKeptDocuments) {
  write_seven();
  ReutersOptions o = small();  // 3 documents, 3 terms
  prepare_reuters(raw, o, out);
  // permutation(7) = [2 1 6 0 4 5 3]: rows are kept documents 2, 1, 6.
  expect_rows(out, {2, 1, 6});
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.name, "reuters3");
  EXPECT_CONTAINS(info.preprocessing, "subset 'dec'");
  EXPECT_CONTAINS(info.preprocessing, "n = 7 kept documents");
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "subset"), "dec");
  EXPECT_EQ(h5::read_attr_int(f, "seed"), 1234);
  EXPECT_EQ(h5::read_attr_int(f, "num_kept_documents"), 7);
  EXPECT_EQ(h5::read_attr_int(f, "vocabulary_size"), 3);
  EXPECT_EQ(h5::read_attr_string(f, "vocabulary"), "alpha beta gamma");
  EXPECT_EQ(h5::read_attr_string(f, "categories"), "CCAT,GCAT,MCAT,ECAT");
  EXPECT_EQ(h5::read_attr_string(f, "document_ids_sha256"), sha256_bytes("203\n202\n207\n", 12));
  EXPECT_EQ(h5::read_attr_string(f, "sha256_rcv1-v2.topics.qrels"), sha256_file(path("rcv1-v2.topics.qrels")));
  EXPECT_EQ(h5::read_attr_string(f, "sha256_lyrl2004_tokens_train.dat"), sha256_file(path(kTokenFiles[4])));
}

TEST_F(ConvertReuters, DecKerasSubsetTakesFirstThenPermutes) {
  write_seven();
  ReutersOptions o = small();
  o.subset = ReutersSubset::kDecKeras;
  o.docs = 6;
  prepare_reuters(raw, o, out);
  // First 6 kept documents in file order, permuted by permutation(6) = [2 1 5 0 4 3].
  expect_rows(out, {2, 1, 5, 0, 4, 3});
  EXPECT_CONTAINS(inspect(out).preprocessing, "subset 'dec-keras'");
  // The same TF-IDF (fitted on all seven) whichever subset: all seven rows.
  o.docs = 7;
  fs::remove(out);
  prepare_reuters(raw, o, out);
  expect_rows(out, {2, 1, 6, 0, 4, 5, 3});
}

TEST_F(ConvertReuters, GzipFilesAreRead) {
  write_seven();
  for (const char* name : {kTokenFiles[1], kTokenFiles[4], "rcv1-v2.topics.qrels"}) {
    std::ifstream in(path(name), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fs::remove(path(name));
    write_gz(path(std::string(name) + ".gz"), text);
  }
  prepare_reuters(raw, small(), out);
  expect_rows(out, {2, 1, 6});
  h5::File f = h5::open_read(out);
  EXPECT_TRUE(h5::read_attr_string(f, "sha256_lyrl2004_tokens_train.dat.gz").has_value());
}

TEST_F(ConvertReuters, MissingFilesAndBadOptions) {
  write_seven();
  fs::remove(path(kTokenFiles[2]));
  expect_refused(path(kTokenFiles[2]), "missing RCV1-v2 file");
  write_seven();
  ReutersOptions o = small();
  o.docs = 8;
  EXPECT_THROW(prepare_reuters(raw, o, out), UsageError);
  EXPECT_THROW(parse_reuters_subset("DEC"), UsageError);
  EXPECT_CONTAINS(error_of([&] { prepare_reuters(tmp.file("none"), small(), out); }), "no such directory");
}

TEST_F(ConvertReuters, MalformedQrelsAreRefused) {
  write_seven();
  write_text(path("rcv1-v2.topics.qrels"), "CCAT 201 1\nGCAT two 1\n");
  expect_refused(path("rcv1-v2.topics.qrels"), "line 2: expected '<topic> <docid> 1'");
  write_text(path("rcv1-v2.topics.qrels"), "C15 201 1\nCCAT 201 1\nGCAT 201 1\n");
  expect_refused(path("rcv1-v2.topics.qrels"), "no document has exactly one of the topics");
  write_text(path("rcv1-v2.topics.qrels"), "\n");
  expect_refused(path("rcv1-v2.topics.qrels"), "is empty");
}

TEST_F(ConvertReuters, MalformedTokenFilesAreRefused) {
  write_seven();
  const std::string f = path(kTokenFiles[1]);
  write_text(f, "alpha beta\n" + token_file({{203, {"gamma"}}}));
  expect_refused(f, "line 1: text outside a record");
  write_text(f, ".I 203\nalpha\n.W\nbeta\n\n");
  expect_refused(f, "line 2: text outside a record");
  write_text(f, ".I 203\n.W\nalpha\n.W\n");
  expect_refused(f, "line 4: .W without a preceding .I line (second .W in record .I 203)");
  write_text(f, ".I abc\n.W\nalpha\n\n");
  expect_refused(f, "line 1: expected '.I <docid>'");
  // A file cut short after a record's .I line.
  write_text(f, token_file({{203, {"gamma"}}}) + ".I 999\n");
  expect_refused(f, "record .I 999 has no .W line");
  // A file cut short before its last records: the qrels list documents never seen.
  write_text(path(kTokenFiles[4]), token_file({{206, {"zeta beta"}}}));
  write_text(f, token_file({{203, {"gamma gamma gamma alpha"}}}));
  expect_refused(path("rcv1-v2.topics.qrels"),
                 "lists 7 documents with exactly one of CCAT, GCAT, MCAT, ECAT but "
                 "the token files hold 6 of them");
  // The same kept document twice.
  write_seven();
  write_text(path(kTokenFiles[3]), token_file({{205, {"alpha"}}, {201, {"beta"}}}));
  expect_refused(path(kTokenFiles[3]), "line 5: document 201 appears twice");
}

}  // namespace
}  // namespace mixvae::data
