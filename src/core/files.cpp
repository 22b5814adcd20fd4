#include "core/files.h"

#include <fcntl.h>
#include <sys/file.h>
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

std::string temporary_path(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

void sync_or_throw(const std::string& path) {
  if (const int err = sync_path(path))
    throw data_error(path, std::string("cannot sync to disk: ") + std::strerror(err));
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_path(path);
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

void write_atomically(const std::string& path, const std::string& what,
                      const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = temporary_path(path);
  try {
    write(tmp);
    sync_or_throw(tmp);
    fs::rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    std::string reason = e.what();
    for (const std::string& name : {tmp + ": ", path + ": "})  // the reason often starts with the file
      if (reason.compare(0, name.size(), name) == 0) reason = reason.substr(name.size());
    throw data_error(path, "cannot write " + what + ": " + reason);
  }
  const fs::path dir = fs::path(path).parent_path();
  sync_path(dir.empty() ? "." : dir.string(), true);
}

DirLock DirLock::acquire(const std::string& dir) {
  const std::string path = (fs::path(dir) / ".mixvae.lock").string();
  DirLock lock;
  lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock.fd_ < 0)
    throw data_error(dir, std::string("cannot create the run lock .mixvae.lock: ") + std::strerror(errno));
  if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      // A file system without locks (some network mounts): go on without, as before.
      ::close(lock.fd_);
      lock.fd_ = -1;
      return lock;
    }
    char owner[256] = {0};
    const ssize_t n = ::pread(lock.fd_, owner, sizeof owner - 1, 0);
    std::string who = n > 0 ? one_line(std::string(owner, size_t(n))) : "another process";
    while (!who.empty() && who.back() == ' ') who.pop_back();
    throw UsageError(dir + ": another mixvae run is writing to this directory (" + who +
                     "); wait for it, stop it, or choose another output.dir");
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string owner = std::string("host ") + host + ", pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.fd_, 0) == 0 && ::pwrite(lock.fd_, owner.data(), owner.size(), 0) < 0) {
    // The lock holds without the owner's name; only the message of a second run is poorer.
  }
  return lock;
}

DirLock& DirLock::operator=(DirLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

int remove_stale_temporaries(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto pos = name.rfind(".tmp.");
    if (pos == std::string::npos || pos == 0 || pos + 5 == name.size()) continue;
    if (name.find_first_not_of("0123456789", pos + 5) != std::string::npos) continue;
    std::error_code rm;
    if (it->is_regular_file(rm) && fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

DirLock claim_dir(const std::string& dir, int* removed) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string probe = (fs::path(dir) / ".mixvae-write-test").string();
  std::ofstream t(probe);
  if (ec || !t) throw data_error(dir, "output directory cannot be created or written");
  t.close();
  fs::remove(probe, ec);
  DirLock lock = DirLock::acquire(dir);
  const int n = remove_stale_temporaries(dir);
  if (removed) *removed = n;
  return lock;
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t')
      c = ' ';
    else if ((c >= 0 && c < 0x20) || c == 0x7f)
      c = '?';  // NUL and other control bytes from a bad file
  }
  return s;
}

}  // namespace mixvae
