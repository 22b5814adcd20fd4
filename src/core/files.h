#pragma once
// Small file helpers every writer of results shares: whole-file reads with a one-line
// error, and atomic writes (temporary file in the same folder, fsync, rename), so a crash
// or a full disk never leaves half a file where a reader would find it.
#include <functional>
#include <string>

namespace mixvae {

// The whole file; DataError "PATH: cannot read: reason".
std::string read_text_file(const std::string& path);

// This machine's host name ("?" when it has none).
std::string host_name();

// The temporary file an atomic write of `path` goes to, in the same folder (so the rename
// is atomic): "PATH.tmp.<pid>.<token>.<host>", token = a random number drawn once per
// process and a counter. Unique per call, also across hosts (two nodes, or containers,
// with the same pid on a shared file system). Every atomic writer uses it, so that
// remove_stale_temporaries() knows what a killed writer leaves behind.
std::string temporary_path(const std::string& path);

// fsync of a file that must be on the disk before it is renamed into place; DataError
// "PATH: cannot sync to disk: reason" (a full disk with delayed allocation, an I/O error).
void sync_or_throw(const std::string& path);

// Writes text to path atomically: temporary_path(PATH), flushed and fsynced, renamed over PATH,
// the folder fsynced. DataError "PATH: cannot write: reason"; no temporary file is left.
void write_file_atomic(const std::string& path, const std::string& text);

// The same for a file of any format: `write` creates it at the temporary path it is given
// (an HDF5 file, say); then fsync, rename over PATH, folder fsync. Any failure: DataError
// "PATH: cannot write WHAT: reason" (the temporary name dropped from the reason), and no
// temporary file is left.
void write_atomically(const std::string& path, const std::string& what,
                      const std::function<void(const std::string& tmp)>& write);

// fsync of a file or (directory = true) a folder; returns 0 or the errno. Folders are
// best effort for callers: some file systems refuse fsync on them.
int sync_path(const std::string& path, bool directory = false);

// An exclusive lock on a run directory (flock on DIR/.mixvae.lock, which holds the owner's
// host and pid), held until destruction, so that two runs never write the same checkpoint.
// A lock left by a killed process is released by the kernel with the process. acquire()
// throws UsageError naming the holder when another process has it.
class DirLock {
 public:
  DirLock() = default;
  static DirLock acquire(const std::string& dir);
  DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A lock file made with O_CREAT | O_EXCL, which works across hosts on a shared file system
// (flock may not): who makes a thing that independent processes need (a sweep's artifacts,
// made once although array slices and other sweeps share RUNS/pretrained). It holds the
// owner's host and pid; its modification time is a heartbeat the owner refreshes. A lock
// whose owner is gone is stale and taken over: on this host when its pid is not alive, on
// any host when its heartbeat is older than kLockFileStaleSeconds. (A stale lock broken by
// two processes at once can let both make the thing: harmless where the result is written
// atomically, as artifacts are.)
class LockFile {
 public:
  LockFile() = default;
  // Takes `path` (a stale lock is removed first). false: a live owner holds it, described
  // in *holder ("host H, pid P"). DataError when the file cannot be created (no folder, no
  // permission).
  static bool try_take(const std::string& path, LockFile* out, std::string* holder = nullptr);
  LockFile(LockFile&& o) noexcept;
  LockFile& operator=(LockFile&& o) noexcept;
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;
  ~LockFile() { release(); }
  bool held() const { return fd_ >= 0; }
  // Refreshes the heartbeat; cheap to call every training step (touches the file at most
  // every 10 s).
  void heartbeat();
  // Removes the lock file (if it is still this one) and closes it.
  void release();

 private:
  int fd_ = -1;
  std::string path_;
  int64_t last_beat_ms_ = 0;
};
inline constexpr int kLockFileStaleSeconds = 300;
// Whether a live owner holds the lock file `path` (false: none, or a stale one).
bool lock_file_live(const std::string& path, std::string* holder = nullptr);
// The lock file that guards the making of `path`: "PATH.lock".
inline std::string lock_file_of(const std::string& path) { return path + ".lock"; }

// Removes the temporary files that atomic writes in dir left behind when their process was
// killed mid-write (temporary_path's names, and "NAME.tmp.<pid>" of older versions); call
// only while holding dir's DirLock. One of this host is removed when its process is gone
// (or is this one), one of another host only when it has not been written to for
// kStaleTemporarySeconds (its writer may be alive there). Returns how many were removed.
int remove_stale_temporaries(const std::string& dir);
inline constexpr int kStaleTemporarySeconds = 600;

// What every run opens its output folder with (rank 0): creates dir and missing parents,
// checks that a file can be written there (DataError "DIR: output directory cannot be
// created or written"), takes its DirLock and removes the temporaries a killed writer left
// (their number in *removed when given).
DirLock claim_dir(const std::string& dir, int* removed = nullptr);

// Newlines, carriage returns and tabs as spaces, other control bytes (NUL, ESC, ...) as
// '?': error texts go into one-line messages on a terminal.
std::string one_line(std::string s);

}  // namespace mixvae
