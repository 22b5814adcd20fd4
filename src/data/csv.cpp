#include "data/csv.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

constexpr size_t kBlock = size_t{1} << 20;

gzFile as_gz(void* p) { return static_cast<gzFile>(p); }

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t'; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A field for a message: quoted, and cut short if long.
std::string show(std::string_view field) {
  std::string s(field.substr(0, 40));
  if (field.size() > 40) s += "...";
  return "'" + s + "'";
}

}  // namespace

// ---------------------------------------------------------------------------------------
TextLines::TextLines(const std::string& path) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw data_error(
        path, errno == ENOENT ? std::string("no such file") : std::string("cannot access: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw data_error(path, "is a directory, expected a text file");
  errno = 0;
  gz_ = gzopen(path.c_str(), "rb");
  if (gz_ == nullptr)
    throw data_error(path, std::string("cannot read: ") + (errno != 0 ? std::strerror(errno) : "out of memory"));
  gzbuffer(as_gz(gz_), 1 << 17);
  buf_.resize(kBlock);
}

TextLines::~TextLines() {
  if (gz_ != nullptr) gzclose(as_gz(gz_));
}

bool TextLines::fill() {
  if (eof_) return false;
  // Keep the unfinished line at the front of the buffer.
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a line longer than the buffer
  const int got = gzread(as_gz(gz_), buf_.data() + end_, static_cast<unsigned>(buf_.size() - end_));
  int errnum = Z_OK;
  const char* msg = gzerror(as_gz(gz_), &errnum);
  if (got < 0 || (errnum != Z_OK && errnum != Z_BUF_ERROR)) {
    if (errnum == Z_ERRNO) throw data_error(path_, std::string("cannot read: ") + std::strerror(errno));
    throw data_error(path_, std::string("corrupt gzip data (") + (msg != nullptr ? msg : "?") + ")");
  }
  if (errnum == Z_BUF_ERROR)  // zlib's "unexpected end of file" inside a gzip stream
    throw data_error(path_, "truncated gzip data (the compressed file ends early)");
  if (got == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(got);
  return true;
}

bool TextLines::next(std::string& line) {
  for (;;) {
    const char* begin = buf_.data() + pos_;
    const void* nl = std::memchr(begin, '\n', end_ - pos_);
    if (nl != nullptr) {
      const size_t len = static_cast<size_t>(static_cast<const char*>(nl) - begin);
      line.assign(begin, len);
      pos_ += len + 1;
      break;
    }
    if (!fill()) {
      if (pos_ == end_) return false;
      line.assign(buf_.data() + pos_, end_ - pos_);  // the last line has no "\n"
      pos_ = end_;
      break;
    }
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_number_;
  return true;
}

// ---------------------------------------------------------------------------------------
namespace {

enum class Parsed { kOk, kNotANumber, kOverflow };

Parsed parse_number(std::string_view field, double* value) {
  if (field.empty()) return Parsed::kNotANumber;
  std::string_view s = field;
  if (s.front() == '+') {
    s.remove_prefix(1);
    if (s.empty() || s.front() == '+' || s.front() == '-') return Parsed::kNotANumber;
  }
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ptr != s.data() + s.size()) return Parsed::kNotANumber;
  if (ec == std::errc::result_out_of_range) {
    // Underflow is a tiny number, not an error; overflow is.
    const std::string copy(s);
    v = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(v)) return Parsed::kOverflow;
  } else if (ec != std::errc()) {
    return Parsed::kNotANumber;
  }
  *value = v;
  return Parsed::kOk;
}

}  // namespace

bool parse_double(std::string_view field, double* value) { return parse_number(field, value) == Parsed::kOk; }

bool parse_int64(std::string_view field, int64_t* value) {
  if (field.empty()) return false;
  std::string_view s = field;
  if (s.front() == '+') {
    s.remove_prefix(1);
    if (s.empty() || s.front() == '-') return false;
  }
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return false;
  *value = v;
  return true;
}

void split_whitespace(std::string_view line, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t i = 0;
  const size_t n = line.size();
  while (i < n) {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == n) break;
    const size_t start = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') ++i;
    fields->push_back(line.substr(start, i - start));
  }
}

void split_commas(std::string_view line, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    std::string_view f =
        trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
    fields->push_back(f);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

std::string at_line(const std::string& path, int64_t line) { return path + ": line " + std::to_string(line); }

// ---------------------------------------------------------------------------------------
namespace {

struct ColumnNames {
  const std::vector<std::string>* header = nullptr;
  // "column 3" or "column 3 ('acc_x')"; 1-based over all fields of the line.
  std::string operator()(size_t field) const {
    std::string s = "column " + std::to_string(field + 1);
    if (header != nullptr && field < header->size() && !(*header)[field].empty())
      s += " (" + show((*header)[field]) + ")";
    return s;
  }
};

float to_feature(std::string_view field, const std::string& path, int64_t line, const std::string& column) {
  double v = 0;
  const Parsed p = parse_number(field, &v);
  const std::string where = at_line(path, line) + ", " + column + ": ";
  if (p == Parsed::kNotANumber) throw DataError(where + show(field) + " is not a number");
  if (p == Parsed::kOverflow) throw DataError(where + show(field) + " is out of range");
  if (std::isnan(v)) throw DataError(where + "NaN (features must be finite)");
  if (std::isinf(v)) throw DataError(where + show(field) + " is infinite (features must be finite)");
  if (std::fabs(v) > std::numeric_limits<float>::max()) throw DataError(where + show(field) + " does not fit float32");
  return static_cast<float>(v);
}

}  // namespace

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  TextLines lines(path);
  CsvTable table;
  std::string line;
  std::vector<std::string_view> fields;

  // The first non-blank line decides the delimiter, the header and the width.
  while (lines.next(line) && is_blank(line)) {
  }
  if (lines.line_number() == 0 || is_blank(line)) throw data_error(path, "is empty (no rows)");
  const int64_t first_line = lines.line_number();
  const bool commas = options.delimiter == Delimiter::kComma ||
                      (options.delimiter == Delimiter::kAuto && line.find(',') != std::string::npos);
  table.delimiter = commas ? ',' : ' ';
  auto split = [&](std::string_view l) { commas ? split_commas(l, &fields) : split_whitespace(l, &fields); };
  split(line);
  const int64_t width = static_cast<int64_t>(fields.size());

  // The label column as an index, if the flag is one.
  int64_t label_index = -1;
  int64_t as_index = 0;
  const bool label_is_number = !options.label_column.empty() && parse_int64(options.label_column, &as_index);
  if (label_is_number) label_index = as_index < 0 ? width + as_index : as_index;

  bool header = options.header == HeaderMode::kYes;
  if (options.header == HeaderMode::kAuto) {
    if (!options.label_column.empty() && !label_is_number) header = true;
    for (int64_t i = 0; i < width && !header; ++i) {
      double v = 0;
      if (i != label_index && !parse_double(fields[i], &v)) header = true;
    }
  }
  std::vector<std::string> names;
  if (header) {
    for (std::string_view f : fields) names.emplace_back(f);
    // A header name wins over an index: --label-column 3 means the column named "3" if any.
    if (!options.label_column.empty()) {
      const auto it = std::find(names.begin(), names.end(), options.label_column);
      if (it != names.end()) {
        label_index = it - names.begin();
      } else if (!label_is_number) {
        std::string known;
        for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
        throw UsageError("--label-column '" + options.label_column + "': " + path +
                         " has no such column (header: " + known.substr(0, 300) + ")");
      }
    }
  } else if (!options.label_column.empty() && !label_is_number) {
    throw UsageError("--label-column '" + options.label_column + "': " + path +
                     " has no header line, so give the label column as a 0-based index");
  }
  if (!options.label_column.empty() && (label_index < 0 || label_index >= width))
    throw UsageError("--label-column " + options.label_column + ": " + path + " has " + std::to_string(width) +
                     " columns (0.." + std::to_string(width - 1) + ", or -1 for the last)");
  const bool has_labels = label_index >= 0;
  table.d = width - (has_labels ? 1 : 0);
  if (table.d < 1) throw DataError(at_line(path, first_line) + ": no feature columns besides the label column");
  if (options.expected_columns > 0 && table.d != options.expected_columns)
    throw DataError(at_line(path, first_line) + " has " + std::to_string(table.d) + " values, expected " +
                    std::to_string(options.expected_columns));
  table.had_header = header;
  if (header) {
    for (int64_t i = 0; i < width; ++i)
      if (i == label_index)
        table.label_name = names[i];
      else
        table.columns.push_back(names[i]);
  }

  ColumnNames column{header ? &names : nullptr};
  std::vector<std::string> label_text;
  std::vector<int64_t> label_line;
  auto add_row = [&](int64_t line_no) {
    if (static_cast<int64_t>(fields.size()) != width)
      throw DataError(at_line(path, line_no) + " has " + std::to_string(fields.size() - (has_labels ? 1 : 0)) +
                      " values, expected " + std::to_string(table.d) + (has_labels ? " (plus the label column)" : "") +
                      " as on line " + std::to_string(first_line));
    for (int64_t i = 0; i < width; ++i) {
      if (i == label_index) {
        label_text.emplace_back(fields[i]);
        label_line.push_back(line_no);
      } else {
        table.x.push_back(to_feature(fields[i], path, line_no, column(static_cast<size_t>(i))));
      }
    }
    ++table.n;
  };
  if (!header) add_row(first_line);
  while (lines.next(line)) {
    if (is_blank(line)) continue;
    split(line);
    if (header && static_cast<int64_t>(fields.size()) != width)
      throw DataError(at_line(path, lines.line_number()) + " has " + std::to_string(fields.size()) +
                      " columns, the header has " + std::to_string(width));
    add_row(lines.line_number());
  }
  if (table.n == 0) throw data_error(path, "has a header but no data rows");

  if (has_labels) {
    bool all_int = true;
    std::vector<int64_t> ints(label_text.size());
    for (size_t i = 0; i < label_text.size() && all_int; ++i) all_int = parse_int64(label_text[i], &ints[i]);
    if (all_int) {
      int64_t max_label = 0;
      for (size_t i = 0; i < ints.size(); ++i) {
        if (ints[i] < 0)
          throw DataError(at_line(path, label_line[i]) + ": label " + std::to_string(ints[i]) +
                          " is negative (integer labels must be class ids 0..K-1)");
        max_label = std::max(max_label, ints[i]);
      }
      table.y = std::move(ints);
      table.num_classes = max_label + 1;
    } else {
      std::map<std::string, int64_t> ids;
      for (size_t i = 0; i < label_text.size(); ++i) {
        if (label_text[i].empty()) throw DataError(at_line(path, label_line[i]) + ": empty label");
        ids.emplace(label_text[i], 0);
      }
      for (auto& [value, id] : ids) {
        id = static_cast<int64_t>(table.label_values.size());
        table.label_values.push_back(value);
      }
      table.y.reserve(label_text.size());
      for (const std::string& t : label_text) table.y.push_back(ids[t]);
      table.num_classes = static_cast<int64_t>(ids.size());
    }
  }
  return table;
}

void prepare_csv(const std::string& path, const CsvOptions& options, const std::string& name,
                 const std::string& out_path) {
  const CsvTable t = read_csv(path, options);
  const std::string base = std::filesystem::path(path).filename().string();
  DatasetMeta meta;
  meta.name = name.empty() ? std::filesystem::path(path).stem().string() : name;
  meta.source = "user text table " + base;
  meta.preprocessing = "none: values stored as given (as float32)";
  meta.num_classes = t.y.empty() ? 0 : t.num_classes;
  meta.extra.push_back(file_checksum(path));
  meta.extra.emplace_back("delimiter", t.delimiter == ',' ? "comma" : "whitespace");
  meta.extra.emplace_back("header", t.had_header ? "yes" : "no");
  if (!t.y.empty()) {
    meta.extra.emplace_back("label_column", t.label_name.empty() ? options.label_column : t.label_name);
    if (!t.label_values.empty()) meta.extra.emplace_back("label_values", nlohmann::json(t.label_values).dump());
  }
  write_dataset(out_path, t.x.data(), t.n, t.d, t.y.empty() ? nullptr : t.y.data(), meta);
}

}  // namespace mixvae::data
