#include "core/files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
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

std::string host_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return "?";
  std::string h = host;
  for (char& c : h)  // a file-name part: no separators or spaces
    if (c == '/' || c == ' ' || c == '\\') c = '_';
  return h;
}

std::string temporary_path(const std::string& path) {
  // The random part tells apart processes with the same host name and pid (containers);
  // the counter, successive writes of one process.
  static const uint32_t nonce = std::random_device{}();
  static std::atomic<uint64_t> counter{0};
  char token[40];
  std::snprintf(token, sizeof token, "%08x-%llu", nonce, (unsigned long long)counter.fetch_add(1));
  return path + ".tmp." + std::to_string(::getpid()) + "." + token + "." + host_name();
}

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
  const std::string owner = "host " + host_name() + ", pid " + std::to_string(::getpid()) + "\n";
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

namespace {
int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "host H, pid P" of a lock's owner, its inode, and whether the owner is gone.
enum class LockState { None, Live, Stale };
LockState lock_state(const std::string& path, std::string* holder, ino_t* inode) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? LockState::None : LockState::Live;  // unreadable: leave it be
  struct stat st {};
  char buf[256] = {0};
  const bool ok = ::fstat(fd, &st) == 0;
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  if (!ok) return LockState::Live;
  if (inode) *inode = st.st_ino;
  std::string owner = n > 0 ? std::string(buf, size_t(n)) : std::string();
  while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
  if (holder) *holder = owner.empty() ? "a process that has not written its name yet" : one_line(owner);
  const std::string host_prefix = "host " + host_name() + ", pid ";
  if (owner.rfind(host_prefix, 0) == 0) {
    const long pid = std::atol(owner.c_str() + host_prefix.size());
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) return LockState::Stale;
  }
  if (std::time(nullptr) - st.st_mtime > kLockFileStaleSeconds) return LockState::Stale;
  return LockState::Live;
}
}  // namespace

bool lock_file_live(const std::string& path, std::string* holder) {
  return lock_state(path, holder, nullptr) == LockState::Live;
}

bool LockFile::try_take(const std::string& path, LockFile* out, std::string* holder) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const std::string owner = "host " + host_name() + ", pid " + std::to_string(::getpid()) + "\n";
      if (::write(fd, owner.data(), owner.size()) < 0) {
        // The lock holds without the owner's name; a waiter then only waits for the heartbeat.
      }
      out->release();
      out->fd_ = fd;
      out->path_ = path;
      out->last_beat_ms_ = steady_ms();
      return true;
    }
    if (errno != EEXIST) throw data_error(path, std::string("cannot create the lock file: ") + std::strerror(errno));
    ino_t inode = 0;
    const LockState state = lock_state(path, holder, &inode);
    if (state == LockState::Live) return false;
    if (state == LockState::Stale) {
      // Removed only if it is still the file judged stale (not one a third process just made).
      struct stat now {};
      if (::stat(path.c_str(), &now) == 0 && now.st_ino == inode) ::unlink(path.c_str());
    }
  }
  return false;
}

LockFile::LockFile(LockFile&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)), last_beat_ms_(o.last_beat_ms_) {
  o.fd_ = -1;
}

LockFile& LockFile::operator=(LockFile&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    last_beat_ms_ = o.last_beat_ms_;
    o.fd_ = -1;
  }
  return *this;
}

void LockFile::heartbeat() {
  if (fd_ < 0) return;
  const int64_t now = steady_ms();
  if (now - last_beat_ms_ < 10000) return;
  last_beat_ms_ = now;
  ::futimens(fd_, nullptr);
}

void LockFile::release() {
  if (fd_ < 0) return;
  struct stat mine {
  }, named{};
  if (::fstat(fd_, &mine) == 0 && ::stat(path_.c_str(), &named) == 0 && mine.st_ino == named.st_ino &&
      mine.st_dev == named.st_dev)
    ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

namespace {
// Whether `name` is a temporary_path() name ("NAME.tmp.<pid>.<hex>-<n>.<host>") or an
// older "NAME.tmp.<pid>"; its pid and host ("" for the older form).
bool parse_temporary(const std::string& name, long* pid, std::string* host) {
  for (auto pos = name.find(".tmp."); pos != std::string::npos; pos = name.find(".tmp.", pos + 1)) {
    if (pos == 0) continue;
    const size_t digits = pos + 5, end = name.find_first_not_of("0123456789", digits);
    const size_t length = (end == std::string::npos ? name.size() : end) - digits;
    if (length == 0 || length > 18) continue;
    *pid = std::stol(name.substr(digits, length));
    host->clear();
    if (end == std::string::npos) return true;  // NAME.tmp.<pid>
    if (name[end] != '.') continue;
    const size_t dash = name.find('-', end + 1), dot = dash == std::string::npos ? dash : name.find('.', dash);
    if (dash == std::string::npos || dot == std::string::npos || dash == end + 1 || dot == dash + 1 ||
        dot + 1 == name.size())
      continue;
    if (name.find_first_not_of("0123456789abcdef", end + 1) != dash) continue;
    if (name.find_first_not_of("0123456789", dash + 1) != dot) continue;
    *host = name.substr(dot + 1);
    return true;
  }
  return false;
}
}  // namespace

int remove_stale_temporaries(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  const std::string here = host_name();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    long pid = 0;
    std::string host;
    if (!parse_temporary(name, &pid, &host)) continue;
    std::error_code rm;
    if (!it->is_regular_file(rm)) continue;
    if (host == here) {
      // Still being written by a live process of this host (not this one): keep it.
      if (pid != long(::getpid()) && pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM)) continue;
    } else if (!host.empty()) {
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0 || std::time(nullptr) - st.st_mtime < kStaleTemporarySeconds) continue;
    }
    if (fs::remove(it->path(), rm)) ++removed;
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
