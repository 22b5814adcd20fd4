#include "data/reuters.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <unordered_map>
#include <utility>

#include "core/errors.h"
#include "core/log.h"
#include "core/sha256.h"
#include "data/csv.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCategories[] = {"CCAT", "GCAT", "MCAT", "ECAT"};
constexpr int kClasses = 4;
constexpr const char* kQrels = "rcv1-v2.topics.qrels";
// The order of both reference scripts: the four test parts, then train.
constexpr const char* kTokenFiles[] = {"lyrl2004_tokens_test_pt0.dat", "lyrl2004_tokens_test_pt1.dat",
                                       "lyrl2004_tokens_test_pt2.dat", "lyrl2004_tokens_test_pt3.dat",
                                       "lyrl2004_tokens_train.dat"};

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string locate(const std::string& dir, const std::string& name) {
  const std::string path = (fs::path(dir) / name).string();
  if (is_file(path)) return path;
  if (is_file(path + ".gz")) return path + ".gz";
  throw data_error(path, "missing RCV1-v2 file (also looked for " + name + ".gz)");
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

// Calls f(token) for each lower-cased run of >= 2 word bytes; `token` is reused.
template <class F>
void for_each_token(std::string_view text, std::string& token, F&& f) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    while (i < n && !is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < n && is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    if (i - start >= 2) {
      token.assign(text.data() + start, i - start);
      for (char& c : token)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      f(token);
    }
  }
}

// The four root categories a document carries, as bits, for the documents that carry any.
std::unordered_map<int64_t, uint8_t> read_qrels(const std::string& path) {
  TextLines lines(path);
  std::unordered_map<int64_t, uint8_t> topics;
  std::string line;
  std::vector<std::string_view> fields;
  int64_t records = 0;
  while (lines.next(line)) {
    split_whitespace(line, &fields);
    if (fields.empty()) continue;
    int64_t doc = 0;
    if (fields.size() < 2 || !parse_int64(fields[1], &doc) || doc <= 0)
      throw DataError(at_line(path, lines.line_number()) + ": expected '<topic> <docid> 1', found '" +
                      line.substr(0, 60) + "'");
    ++records;
    for (int c = 0; c < kClasses; ++c)
      if (fields[0] == kCategories[c]) topics[doc] |= static_cast<uint8_t>(1u << c);
  }
  if (records == 0) throw data_error(path, "is empty, expected lines '<topic> <docid> 1'");
  return topics;
}

struct TermStats {
  int64_t total = 0;  // occurrences over all kept documents
  int64_t df = 0;     // kept documents containing the term
};

struct KeptDoc {
  int8_t label = -1;
  bool seen = false;
};

// Streams the token files, accumulating term statistics over the kept documents and the
// term counts of the documents that become rows.
class Corpus {
 public:
  Corpus(std::unordered_map<int64_t, KeptDoc>& kept, std::vector<int64_t> row_of_index, int64_t rows)
      : kept_(kept),
        row_of_index_(std::move(row_of_index)),
        rows_(static_cast<size_t>(rows)),
        labels_(static_cast<size_t>(rows), -1),
        docids_(static_cast<size_t>(rows), 0) {}

  // Returns the number of records in the file.
  int64_t read(const std::string& path) {
    TextLines lines(path);
    std::string line;
    enum { kNone, kHeader, kText } state = kNone;
    int64_t records = 0;
    while (lines.next(line)) {
      if (line.size() >= 2 && line[0] == '.' && (line[1] == 'I' || line[1] == 'W')) {
        if (line[1] == 'I') {
          if (state == kHeader) throw missing_w(path, lines.line_number());
          finish();
          start(path, lines, line);
          ++records;
          state = kHeader;
        } else {
          if (state != kHeader)
            throw DataError(at_line(path, lines.line_number()) + ": .W without a preceding .I line" +
                            (state == kText ? " (second .W in record .I " + std::to_string(doc_) + ")" : ""));
          state = kText;
        }
        continue;
      }
      if (state == kText) {
        if (current_ >= 0) for_each_token(line, token_, [&](const std::string& t) { ids_.push_back(id_of(t)); });
      } else if (line.find_first_not_of(" \t") != std::string::npos) {
        throw DataError(at_line(path, lines.line_number()) + ": text outside a record (expected '.I <docid>' then " +
                        "'.W' before the tokens), found '" + line.substr(0, 40) + "'");
      }
    }
    if (state == kHeader) throw missing_w(path, lines.line_number());
    finish();
    if (records == 0) throw data_error(path, "holds no '.I <docid>' records (not an LYRL2004 token file?)");
    return records;
  }

  int64_t kept_found() const { return kept_found_; }
  const std::vector<std::string>& terms() const { return terms_; }
  const std::vector<TermStats>& stats() const { return stats_; }
  // Row r's (term id, count) pairs, its label and document id.
  const std::vector<std::vector<std::pair<uint32_t, uint32_t>>>& rows() const { return rows_; }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<int64_t>& docids() const { return docids_; }

 private:
  DataError missing_w(const std::string& path, int64_t line) const {
    return DataError(at_line(path, line) + ": record .I " + std::to_string(doc_) +
                     " has no .W line (truncated or not an LYRL2004 token file)");
  }

  void start(const std::string& path, const TextLines& lines, const std::string& line) {
    int64_t doc = 0;
    std::vector<std::string_view> fields;
    split_whitespace(std::string_view(line).substr(2), &fields);
    if (fields.size() != 1 || !parse_int64(fields[0], &doc) || doc <= 0)
      throw DataError(at_line(path, lines.line_number()) + ": expected '.I <docid>', found '" + line.substr(0, 40) +
                      "'");
    doc_ = doc;
    current_ = -1;
    const auto it = kept_.find(doc);
    if (it == kept_.end()) return;
    if (it->second.seen)
      throw DataError(at_line(path, lines.line_number()) + ": document " + std::to_string(doc) + " appears twice");
    it->second.seen = true;
    current_ = kept_found_++;
    label_ = it->second.label;
  }

  // Ends the open record: counts each distinct term once for df, all occurrences for the
  // total, and keeps the counts if the document becomes a row.
  void finish() {
    if (current_ < 0) return;
    std::sort(ids_.begin(), ids_.end());
    const int64_t row = current_ < static_cast<int64_t>(row_of_index_.size()) ? row_of_index_[current_] : -1;
    for (size_t i = 0; i < ids_.size();) {
      size_t j = i;
      while (j < ids_.size() && ids_[j] == ids_[i]) ++j;
      TermStats& s = stats_[ids_[i]];
      s.total += static_cast<int64_t>(j - i);
      s.df += 1;
      if (row >= 0) rows_[row].emplace_back(ids_[i], static_cast<uint32_t>(j - i));
      i = j;
    }
    if (row >= 0) {
      labels_[row] = label_;
      docids_[row] = doc_;
    }
    ids_.clear();
    current_ = -1;
  }

  uint32_t id_of(const std::string& term) {
    const auto [it, inserted] = vocab_.try_emplace(term, static_cast<uint32_t>(terms_.size()));
    if (inserted) {
      terms_.push_back(term);
      stats_.emplace_back();
    }
    return it->second;
  }

  std::unordered_map<int64_t, KeptDoc>& kept_;
  std::vector<int64_t> row_of_index_;  // kept index (file order) -> row, or -1
  std::unordered_map<std::string, uint32_t> vocab_;
  std::vector<std::string> terms_;
  std::vector<TermStats> stats_;
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> rows_;
  std::vector<int64_t> labels_, docids_;
  std::string token_;
  std::vector<uint32_t> ids_;
  int64_t doc_ = 0, current_ = -1, kept_found_ = 0;
  int8_t label_ = -1;
};

std::string recipe(const ReutersOptions& o, int64_t kept, int64_t vocab) {
  const std::string sub =
      o.subset == ReutersSubset::kDec
          ? "subset 'dec' (piiswrong/dec): numpy.random.seed(" + std::to_string(o.seed) + ") permutation of all " +
                std::to_string(kept) + " kept documents, first " + std::to_string(o.docs) + " rows"
          : "subset 'dec-keras' (XifengGuo/DEC-keras): first " + std::to_string(o.docs) +
                " kept documents in file order, then numpy.random.seed(" + std::to_string(o.seed) + ") permutation";
  return "documents whose qrels topics hold exactly one of CCAT,GCAT,MCAT,ECAT (labels 0-3), .W text in file order "
         "test_pt0..3 then train; CountVectorizer default tokens (lower-cased runs of >= 2 word characters); the " +
         std::to_string(vocab) +
         " terms of highest total count over all kept documents (ties: alphabetical), columns in alphabetical order; "
         "tf = 1 + ln(count), idf = ln((1 + n) / (1 + df)) + 1 with n = " +
         std::to_string(kept) + " kept documents; rows L2-normalised, times sqrt(" + std::to_string(vocab) + "); " +
         sub;
}

}  // namespace

std::string reuters_subset_name(ReutersSubset subset) { return subset == ReutersSubset::kDec ? "dec" : "dec-keras"; }

ReutersSubset parse_reuters_subset(const std::string& name) {
  if (name == "dec") return ReutersSubset::kDec;
  if (name == "dec-keras") return ReutersSubset::kDecKeras;
  throw UsageError("reuters: unknown --subset '" + name +
                   "' (dec: DEC/VaDE's permute-then-take; dec-keras: " + "DEC-keras's take-then-permute)");
}

std::vector<int64_t> numpy_legacy_permutation(int64_t n, uint32_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), int64_t{0});
  std::mt19937 mt(seed);  // init_genrand(seed): RandomState's legacy seeding of an int
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t max = static_cast<uint64_t>(i);
    uint64_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    uint64_t j = 0;
    if (max <= 0xffffffffull) {
      do j = mt() & mask;
      while (j > max);
    } else {
      do {
        const uint64_t hi = mt();
        j = ((hi << 32) | mt()) & mask;
      } while (j > max);
    }
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

void reuters_tokenize(const std::string& text, std::vector<std::string>* tokens) {
  std::string token;
  for_each_token(text, token, [&](const std::string& t) { tokens->push_back(t); });
}

void prepare_reuters(const std::string& raw_dir, const ReutersOptions& options, const std::string& out_path) {
  struct stat st {};
  if (::stat(raw_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw data_error(raw_dir, "no such directory (expected the RCV1-v2 token files and rcv1-v2.topics.qrels)");
  if (options.docs < 1) throw UsageError("reuters: --docs must be >= 1, got " + std::to_string(options.docs));
  if (options.vocabulary < 1)
    throw UsageError("reuters: --vocab must be >= 1, got " + std::to_string(options.vocabulary));
  const std::string qrels = locate(raw_dir, kQrels);
  std::vector<std::string> token_files;
  for (const char* name : kTokenFiles) token_files.push_back(locate(raw_dir, name));

  // Documents with exactly one of the four root categories, and their labels.
  std::unordered_map<int64_t, KeptDoc> kept;
  for (const auto& [doc, bits] : read_qrels(qrels))
    if (bits != 0 && (bits & (bits - 1)) == 0) kept[doc].label = static_cast<int8_t>(__builtin_ctz(bits));
  const int64_t n_kept = static_cast<int64_t>(kept.size());
  if (n_kept == 0) throw data_error(qrels, "no document has exactly one of the topics CCAT, GCAT, MCAT, ECAT");
  if (options.docs > n_kept)
    throw UsageError("reuters: --docs " + std::to_string(options.docs) + " exceeds the " + std::to_string(n_kept) +
                     " documents with exactly one of CCAT, GCAT, MCAT, ECAT in " + qrels);

  // Which kept document (by its index in file order) lands in which row. Both recipes
  // are known before reading: the qrels fix how many documents are kept.
  const int64_t rows = options.docs;
  std::vector<int64_t> row_of_index;
  if (options.subset == ReutersSubset::kDec) {
    const std::vector<int64_t> perm = numpy_legacy_permutation(n_kept, options.seed);
    row_of_index.assign(static_cast<size_t>(n_kept), -1);
    for (int64_t r = 0; r < rows; ++r) row_of_index[perm[r]] = r;
  } else {
    const std::vector<int64_t> perm = numpy_legacy_permutation(rows, options.seed);  // x = x[:docs][perm]
    row_of_index.assign(static_cast<size_t>(rows), -1);
    for (int64_t r = 0; r < rows; ++r) row_of_index[perm[r]] = r;
  }

  Corpus corpus(kept, std::move(row_of_index), rows);
  for (const std::string& path : token_files) {
    const int64_t before = corpus.kept_found();
    const int64_t records = corpus.read(path);
    if (options.progress)
      log::info("reuters: " + fs::path(path).filename().string() + ": " + std::to_string(records) + " documents, " +
                std::to_string(corpus.kept_found() - before) + " kept");
  }
  if (corpus.kept_found() != n_kept)
    throw data_error(qrels, "lists " + std::to_string(n_kept) +
                                " documents with exactly one of CCAT, GCAT, MCAT, ECAT but the token files hold " +
                                std::to_string(corpus.kept_found()) + " of them (a token file truncated or missing?)");

  // The most frequent terms; ties go to the alphabetically first term.
  const std::vector<std::string>& terms = corpus.terms();
  const std::vector<TermStats>& stats = corpus.stats();
  if (terms.empty()) throw data_error(token_files.back(), "the kept documents hold no tokens");
  const int64_t vocab = std::min<int64_t>(options.vocabulary, static_cast<int64_t>(terms.size()));
  std::vector<uint32_t> order(terms.size());
  std::iota(order.begin(), order.end(), 0u);
  std::partial_sort(order.begin(), order.begin() + vocab, order.end(), [&](uint32_t a, uint32_t b) {
    if (stats[a].total != stats[b].total) return stats[a].total > stats[b].total;
    return terms[a] < terms[b];
  });
  order.resize(static_cast<size_t>(vocab));
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return terms[a] < terms[b]; });
  std::vector<int32_t> column_of(terms.size(), -1);
  std::vector<double> idf(static_cast<size_t>(vocab));
  std::string vocabulary;
  for (int64_t c = 0; c < vocab; ++c) {
    const uint32_t id = order[static_cast<size_t>(c)];
    column_of[id] = static_cast<int32_t>(c);
    idf[static_cast<size_t>(c)] =
        std::log((1.0 + static_cast<double>(n_kept)) / (1.0 + static_cast<double>(stats[id].df))) + 1.0;
    vocabulary += (c > 0 ? " " : "") + terms[id];
  }

  // TF-IDF rows (double precision, as scikit-learn), L2-normalised, times sqrt(vocab).
  const double scale = std::sqrt(static_cast<double>(vocab));
  std::vector<float> features(static_cast<size_t>(rows * vocab), 0.0f);
  std::vector<double> row(static_cast<size_t>(vocab));
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(row.begin(), row.end(), 0.0);
    double norm2 = 0;
    for (const auto& [id, count] : corpus.rows()[r]) {
      const int32_t c = column_of[id];
      if (c < 0) continue;
      const double w = (1.0 + std::log(static_cast<double>(count))) * idf[c];
      row[c] = w;
      norm2 += w * w;
    }
    if (norm2 == 0) continue;  // no kept term: a zero row, as scikit-learn leaves it
    const double f = scale / std::sqrt(norm2);
    for (int64_t c = 0; c < vocab; ++c) features[static_cast<size_t>(r * vocab + c)] = static_cast<float>(row[c] * f);
  }

  DatasetMeta meta;
  meta.name = rows == 10000 ? "reuters10k" : "reuters" + std::to_string(rows);
  meta.source = "RCV1-v2 (Lewis et al. 2004): LYRL2004 token files test_pt0-3 + train, rcv1-v2.topics.qrels";
  meta.preprocessing = recipe(options, n_kept, vocab);
  meta.num_classes = kClasses;
  meta.extra.emplace_back("subset", reuters_subset_name(options.subset));
  meta.extra.emplace_back("categories", "CCAT,GCAT,MCAT,ECAT");
  meta.extra.emplace_back("vocabulary", vocabulary);
  meta.extra.push_back(file_checksum(qrels));
  for (const std::string& path : token_files) meta.extra.push_back(file_checksum(path));
  meta.extra_int.emplace_back("seed", options.seed);
  meta.extra_int.emplace_back("num_kept_documents", n_kept);
  meta.extra_int.emplace_back("vocabulary_size", vocab);
  // Which documents, in row order: compare two files' subsets without their features.
  Sha256 ids;
  for (int64_t doc : corpus.docids()) ids.add(std::to_string(doc) + "\n");
  meta.extra.emplace_back("document_ids_sha256", ids.hex());
  meta.extra_int.emplace_back("first_document_id", corpus.docids().front());
  write_dataset(out_path, features.data(), rows, vocab, corpus.labels().data(), meta);
}

}  // namespace mixvae::data
