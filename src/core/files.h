#pragma once
// Small file helpers every writer of results shares: whole-file reads with a one-line
// error, and atomic writes (temporary file in the same folder, fsync, rename), so a crash
// or a full disk never leaves half a file where a reader would find it.
#include <string>

namespace mixvae {

// The whole file; DataError "PATH: cannot read: reason".
std::string read_text_file(const std::string& path);

// Writes text to path atomically: PATH.tmp.<pid>, flushed and fsynced, renamed over PATH,
// the folder fsynced. DataError "PATH: cannot write: reason"; no temporary file is left.
void write_file_atomic(const std::string& path, const std::string& text);

// fsync of a file or (directory = true) a folder; returns 0 or the errno. Folders are
// best effort for callers: some file systems refuse fsync on them.
int sync_path(const std::string& path, bool directory = false);

// Newlines, carriage returns and tabs as spaces: error texts go into one-line messages.
std::string one_line(std::string s);

}  // namespace mixvae
