#pragma once
// SHA-256 (OpenSSL EVP), lower-case hex: provenance of converted datasets, checkpoint
// checksums, config hashes.
#include <cstddef>
#include <string>

namespace mixvae {

// Streams the file; DataError "FILE: cannot read: ..." if it cannot be read.
std::string sha256_file(const std::string& path);

std::string sha256_bytes(const void* data, size_t size);

// Incremental digest over several buffers.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void add(const void* data, size_t size);
  void add(const std::string& s) { add(s.data(), s.size()); }
  std::string hex();  // ends the digest

 private:
  void* ctx_;
};

}  // namespace mixvae
