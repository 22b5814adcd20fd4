#include "core/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace mixvae {
namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) throw data_error(path, "cannot read");
  return os.str();
}

int sync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::string problem;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      problem = std::strerror(errno);
    } else {
      out << text;
      out.flush();
      if (!out) problem = "write failed (disk full?)";
    }
  }
  if (problem.empty())
    if (int err = sync_path(tmp)) problem = std::strerror(err);
  if (problem.empty() && std::rename(tmp.c_str(), path.c_str()) != 0) problem = std::strerror(errno);
  if (!problem.empty()) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw data_error(path, "cannot write: " + problem);
  }
  const fs::path dir = fs::path(path).parent_path();
  sync_path(dir.empty() ? "." : dir.string(), true);
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return s;
}

}  // namespace mixvae
