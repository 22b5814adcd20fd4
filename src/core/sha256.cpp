#include "core/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/errors.h"

namespace mixvae {
namespace {

using DigestContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

DigestContext new_context() {
  DigestContext ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: OpenSSL could not initialise SHA-256");
  return ctx;
}

void update(EVP_MD_CTX* ctx, const void* data, size_t size) {
  if (EVP_DigestUpdate(ctx, data, size) != 1) throw std::runtime_error("sha256: update failed");
}

std::string finish(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, digest, &len) != 1) throw std::runtime_error("sha256: final failed");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

}  // namespace

std::string sha256_file(const std::string& path) {
  std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  DigestContext ctx = new_context();
  std::vector<unsigned char> buf(size_t{1} << 20);
  size_t got = 0;
  while ((got = std::fread(buf.data(), 1, buf.size(), file.get())) > 0) update(ctx.get(), buf.data(), got);
  if (std::ferror(file.get())) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  return finish(ctx.get());
}

Sha256::Sha256() : ctx_(new_context().release()) {}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::add(const void* data, size_t size) { update(static_cast<EVP_MD_CTX*>(ctx_), data, size); }
std::string Sha256::hex() { return finish(static_cast<EVP_MD_CTX*>(ctx_)); }

std::string sha256_bytes(const void* data, size_t size) {
  DigestContext ctx = new_context();
  update(ctx.get(), data, size);
  return finish(ctx.get());
}

}  // namespace mixvae
