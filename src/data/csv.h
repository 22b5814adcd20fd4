#pragma once
// Text tables: a streaming line reader (plain or gzip-compressed files), strict number
// parsing, and the `csv` converter for users' own data (any float matrix, optional
// header line, optional label column). The HAR and Reuters converters read their text
// files through the same line reader and number parser.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mixvae::data {

// Reads a text file line by line without holding it in memory. gzip-compressed files are
// decompressed transparently (zlib reads plain files as they are). Lines come without
// their "\n" and without a trailing "\r" (files written on Windows).
// DataError naming the file: no such file, a directory, unreadable, corrupt gzip data.
class TextLines {
 public:
  explicit TextLines(const std::string& path);
  ~TextLines();
  TextLines(const TextLines&) = delete;
  TextLines& operator=(const TextLines&) = delete;

  // The next line into `line`; false at the end of the file.
  bool next(std::string& line);
  // 1-based number of the line last returned by next().
  int64_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();  // reads the next block; false at the end of the data

  std::string path_;
  void* gz_ = nullptr;  // gzFile, kept out of the header
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
};

// Parses the whole of `field` as a number: optional sign, decimal digits, optional
// fraction and exponent of any width ("2.8858451e-001", "-.5", "+3", "1E+03"), or
// nan/inf. Locale-independent. False if anything else is in the field (including
// surrounding spaces) or the value overflows a double.
bool parse_double(std::string_view field, double* value);

// The same for a decimal integer (optional sign), within int64.
bool parse_int64(std::string_view field, int64_t* value);

// Splits on runs of spaces and tabs, ignoring leading and trailing blanks.
void split_whitespace(std::string_view line, std::vector<std::string_view>* fields);
// Splits on commas; each field is trimmed of blanks and of one pair of surrounding
// double quotes. "a,,b" has an empty middle field.
void split_commas(std::string_view line, std::vector<std::string_view>* fields);

// "line 12" plus, for messages, "FILE: line 12: ".
std::string at_line(const std::string& path, int64_t line);

enum class Delimiter { kAuto, kComma, kWhitespace };
enum class HeaderMode { kAuto, kYes, kNo };

struct CsvOptions {
  // kAuto: commas if the first non-blank line holds one, whitespace otherwise.
  Delimiter delimiter = Delimiter::kAuto;
  // kAuto: the first non-blank line is a header if one of its fields (outside the label
  // column) is not a number.
  HeaderMode header = HeaderMode::kAuto;
  // Empty: no labels. Otherwise a header name, or a 0-based column index (negative
  // counts from the end, -1 = the last column). A name that is also a number is looked
  // up among the header names first.
  std::string label_column;
  // > 0: every row must have exactly this many feature columns (the converters of
  // published formats know their width); 0: the width of the first row.
  int64_t expected_columns = 0;
};

struct CsvTable {
  int64_t n = 0, d = 0;
  std::vector<float> x;                   // n * d, row-major
  std::vector<int64_t> y;                 // n labels, or empty
  std::vector<std::string> columns;       // header names of the feature columns, or empty
  std::string label_name;                 // header name of the label column, or ""
  std::vector<std::string> label_values;  // text labels: value of each class id, sorted
  int64_t num_classes = 0;                // labels: max + 1 (integer) or distinct values (text)
  char delimiter = ',';                   // ',' or ' ' (whitespace), as used
  bool had_header = false;
};

// Reads a whole table. Labels: if every label field is an integer they are kept as they
// are and must be >= 0 (num_classes = max + 1); otherwise the distinct label strings,
// sorted, become classes 0..K-1 (label_values). Blank lines are skipped. DataError
// "FILE: line L: ..." for a row of the wrong width, a field that is not a number, a
// NaN/Inf or a value beyond float32, a negative integer label, an empty table; UsageError
// for a label column that does not exist.
CsvTable read_csv(const std::string& path, const CsvOptions& options);

// The `csv` converter: read_csv, then the dataset file with name `name` (the file's stem
// if empty), the SHA-256 of the input, the delimiter/header/label column used and, for
// text labels, `label_values` (a JSON array) as attributes. Values are stored as given.
void prepare_csv(const std::string& path, const CsvOptions& options, const std::string& name,
                 const std::string& out_path);

}  // namespace mixvae::data
