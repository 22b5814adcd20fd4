#pragma once
// Reuters-10K (RCV1-v2) converter: the DEC/VaDE construction from the raw LYRL2004 token
// files and the topic qrels -> one mixvae dataset file. docs/data.md has the recipe and
// the choices made where the reference code leaves room.
#include <cstdint>
#include <string>
#include <vector>

namespace mixvae::data {

// Which 10,000 documents (both draw from the same TF-IDF, fitted on all kept documents):
//   kDec       piiswrong/dec (DEC, used by VaDE): permute all kept documents with
//              numpy.random.seed(1234), take the first `docs`.
//   kDecKeras  XifengGuo/DEC-keras: take the first `docs` in file order, then permute
//              them with numpy.random.seed(1234).
enum class ReutersSubset { kDec, kDecKeras };

// "dec" / "dec-keras" and back; UsageError for another name.
std::string reuters_subset_name(ReutersSubset subset);
ReutersSubset parse_reuters_subset(const std::string& name);

struct ReutersOptions {
  ReutersSubset subset = ReutersSubset::kDec;
  int64_t docs = 10000;       // documents in the subset
  int64_t vocabulary = 2000;  // most frequent terms kept (CountVectorizer max_features)
  uint32_t seed = 1234;       // numpy.random.seed of both reference scripts
  bool progress = false;      // one log line per token file read
};

// Reads rcv1-v2.topics.qrels and lyrl2004_tokens_test_pt0..3.dat then
// lyrl2004_tokens_train.dat (each optionally ".gz") from raw_dir, streaming the token
// files record by record. Keeps the documents whose qrels topics hold exactly one of
// CCAT, GCAT, MCAT, ECAT (labels 0-3 in that order; 685,071 documents in RCV1-v2);
// counts the `vocabulary` most frequent terms over all of them (ties: the
// alphabetically first term); TF-IDF with tf = 1 + ln(count), smooth idf
// ln((1 + n) / (1 + df)) + 1 over all n kept documents, L2-normalised rows, times
// sqrt(vocabulary); the subset chosen by `subset`. Attributes record the subset recipe,
// the seed, the vocabulary (in column order), the number of kept documents and the
// SHA-256 of each raw file. DataError naming the file (and line) for a missing file, a
// malformed qrels line or token record (text outside a .I/.W record, .I without a
// document id, a record without .W, a document listed twice) or token files that lack
// documents the qrels list; UsageError if docs exceeds the kept documents.
void prepare_reuters(const std::string& raw_dir, const ReutersOptions& options, const std::string& out_path);

// numpy.random.RandomState(seed).permutation(n), element for element: MT19937 seeded by
// init_genrand(seed) (as std::mt19937), then numpy's legacy Fisher-Yates shuffle from the
// end, each index j in [0, i] drawn by masked rejection sampling (random_interval).
std::vector<int64_t> numpy_legacy_permutation(int64_t n, uint32_t seed);

// CountVectorizer's default analyzer: lower-cased runs of two or more word characters
// (ASCII letters, digits, '_', and any byte >= 0x80, standing in for Unicode letters).
// Appends the tokens of `text` to `tokens`.
void reuters_tokenize(const std::string& text, std::vector<std::string>* tokens);

}  // namespace mixvae::data
