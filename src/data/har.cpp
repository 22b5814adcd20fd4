#include "data/har.h"

#include <sys/stat.h>

#include <filesystem>
#include <vector>

#include "core/errors.h"
#include "data/csv.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// DIR/split/NAME or DIR/split/NAME.gz.
std::string locate(const std::string& dir, const std::string& split, const std::string& name) {
  const std::string path = (fs::path(dir) / split / name).string();
  if (is_file(path)) return path;
  if (is_file(path + ".gz")) return path + ".gz";
  throw data_error(path, "missing UCI HAR file (expected the unpacked 'UCI HAR Dataset' folder with train/ and test/)");
}

// One integer label 1..6 per line; returns 0..5.
std::vector<int64_t> read_labels(const std::string& path) {
  TextLines lines(path);
  std::vector<int64_t> labels;
  std::string line;
  std::vector<std::string_view> fields;
  while (lines.next(line)) {
    split_whitespace(line, &fields);
    if (fields.empty()) continue;
    int64_t v = 0;
    if (fields.size() != 1)
      throw DataError(at_line(path, lines.line_number()) + " has " + std::to_string(fields.size()) +
                      " values, expected one activity label");
    if (!parse_int64(fields[0], &v) || v < 1 || v > kHarClasses)
      throw DataError(at_line(path, lines.line_number()) + ": label '" + std::string(fields[0].substr(0, 20)) +
                      "' is not an activity id 1-6");
    labels.push_back(v - 1);
  }
  if (labels.empty()) throw data_error(path, "is empty, expected one activity label (1-6) per line");
  return labels;
}

struct Split {
  CsvTable x;
  std::vector<int64_t> y;
  std::string x_path, y_path;
};

Split read_split(const std::string& dir, const std::string& split) {
  Split s;
  s.x_path = locate(dir, split, "X_" + split + ".txt");
  s.y_path = locate(dir, split, "y_" + split + ".txt");
  CsvOptions options;
  options.delimiter = Delimiter::kWhitespace;
  options.header = HeaderMode::kNo;
  options.expected_columns = kHarFeatures;
  s.x = read_csv(s.x_path, options);
  s.y = read_labels(s.y_path);
  if (static_cast<int64_t>(s.y.size()) != s.x.n)
    throw data_error(s.y_path, "has " + std::to_string(s.y.size()) + " labels but " +
                                   fs::path(s.x_path).filename().string() + " has " + std::to_string(s.x.n) + " rows");
  return s;
}

}  // namespace

void prepare_har(const std::string& raw_dir, const std::string& out_path, int64_t first) {
  struct stat st {};
  if (::stat(raw_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw data_error(raw_dir, "no such directory (expected the unpacked 'UCI HAR Dataset' folder)");
  if (first < 0) throw UsageError("har: --first must be >= 0, got " + std::to_string(first));
  // The official zip unpacks to "UCI HAR Dataset/"; accept its parent too.
  std::string dir = raw_dir;
  const std::string nested = (fs::path(raw_dir) / "UCI HAR Dataset").string();
  if (!fs::exists(fs::path(raw_dir) / "train") && fs::is_directory(nested)) dir = nested;

  const Split train = read_split(dir, "train");
  const Split test = read_split(dir, "test");

  const int64_t total = train.x.n + test.x.n;
  if (first > total)
    throw UsageError("har: --first " + std::to_string(first) + " asks for more rows than " + dir + " holds (" +
                     std::to_string(total) + ")");
  const int64_t n = first > 0 ? first : total;
  std::vector<float> features;
  features.reserve(static_cast<size_t>(total * kHarFeatures));
  features.insert(features.end(), train.x.x.begin(), train.x.x.end());
  features.insert(features.end(), test.x.x.begin(), test.x.x.end());
  std::vector<int64_t> labels(train.y);
  labels.insert(labels.end(), test.y.begin(), test.y.end());

  DatasetMeta meta;
  meta.name = "har";
  meta.source = "UCI Human Activity Recognition Using Smartphones (Anguita et al. 2013), X/y train+test";
  meta.preprocessing =
      "train then test concatenated; 561 features stored as published (already scaled to [-1,1]); "
      "labels 1-6 stored as 0-5" +
      (first > 0 ? "; first " + std::to_string(first) + " of " + std::to_string(total) + " rows kept" +
                       (first == kHarVadeRows ? " (as VaDE)" : "")
                 : std::string());
  meta.num_classes = kHarClasses;
  for (const Split* s : {&train, &test})
    for (const std::string& path : {s->x_path, s->y_path}) meta.extra.push_back(file_checksum(path));
  meta.extra.emplace_back("classes", "WALKING,WALKING_UPSTAIRS,WALKING_DOWNSTAIRS,SITTING,STANDING,LAYING");
  meta.extra_int.emplace_back("num_train", train.x.n);
  meta.extra_int.emplace_back("num_test", test.x.n);
  meta.extra_int.emplace_back("first_rows", first);
  write_dataset(out_path, features.data(), n, kHarFeatures, labels.data(), meta);
}

}  // namespace mixvae::data
