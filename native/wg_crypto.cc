// WireGuard's per-packet cryptography over node's OpenSSL: see wg_crypto.h.
#include "wg_crypto.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "wire.h"

namespace weft {

namespace {

// The 12-byte nonce of a transport counter: 4 zero bytes, then the counter little-endian.
void counter_nonce(uint64_t counter, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  store_le64(nonce + 4, counter);
}

}  // namespace

Aead::~Aead() {
  if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);
}

bool Aead::init(const uint8_t* key, bool encrypt) {
  encrypt_ = encrypt;
  ctx_ = EVP_CIPHER_CTX_new();
  if (ctx_ == nullptr) return false;
  return EVP_CipherInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, key, nullptr, encrypt ? 1 : 0) == 1;
}

bool Aead::begin(uint64_t counter) {
  uint8_t nonce[12];
  counter_nonce(counter, nonce);
  return EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, encrypt_ ? 1 : 0) == 1;
}

bool Aead::update(uint8_t* out, const uint8_t* in, size_t len) {
  int n = 0;
  return len == 0 || (EVP_CipherUpdate(ctx_, out, &n, in, int(len)) == 1 && size_t(n) == len);
}

bool Aead::finish(uint8_t* tag) {
  int n = 0;
  uint8_t none[16];
  return EVP_EncryptFinal_ex(ctx_, none, &n) == 1 && EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kWgTagLen, tag) == 1;
}

bool Aead::open(uint64_t counter, uint8_t* out, const uint8_t* in, size_t len, const uint8_t* tag) {
  if (!begin(counter) || !update(out, in, len)) return false;
  // OpenSSL takes the expected tag before Final, which compares it in constant time.
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kWgTagLen, const_cast<uint8_t*>(tag)) != 1) return false;
  int n = 0;
  uint8_t none[16];
  return EVP_DecryptFinal_ex(ctx_, none, &n) == 1;
}

Mac1::~Mac1() {
  if (ctx_ != nullptr) EVP_MAC_CTX_free(ctx_);
  if (mac_ != nullptr) EVP_MAC_free(mac_);
}

bool Mac1::set_key(const uint8_t* key) {
  if (mac_ == nullptr) mac_ = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  if (mac_ != nullptr && ctx_ == nullptr) ctx_ = EVP_MAC_CTX_new(mac_);
  if (ctx_ == nullptr) return false;
  size_t size = kWgMacLen;
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  return EVP_MAC_init(ctx_, key, kWgKeyLen, params) == 1;
}

bool Mac1::compute(const uint8_t* msg, size_t n, uint8_t* out) {
  // Re-initialised from the key set last (the BLAKE2 MAC keeps it): no allocation per message.
  size_t len = 0;
  return ctx_ != nullptr && EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1 && EVP_MAC_update(ctx_, msg, n) == 1 &&
         EVP_MAC_final(ctx_, out, &len, kWgMacLen) == 1 && len == kWgMacLen;
}

bool Mac1::valid(const uint8_t* msg, size_t mac_at) {
  uint8_t mac[kWgMacLen];
  return compute(msg, mac_at, mac) && CRYPTO_memcmp(mac, msg + mac_at, kWgMacLen) == 0;
}

}  // namespace weft
