// WireGuard's per-packet cryptography for the native engine, over the
// OpenSSL that /usr/bin/node exports (no second libcrypto: the addon links
// none, and its EVP_* symbols resolve against node's): ChaCha20-Poly1305
// with the 64-bit counter nonce of transport messages, and mac1 (keyed
// BLAKE2s-128) for the pre-check of handshake messages. Each object holds
// one OpenSSL context, keyed once; per packet only the nonce is set, and
// nothing is allocated. Not thread-safe: one per thread.
#ifndef WEFT_WG_CRYPTO_H_
#define WEFT_WG_CRYPTO_H_

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

namespace weft {

constexpr size_t kWgKeyLen = 32;
constexpr size_t kWgTagLen = 16;
constexpr size_t kWgMacLen = 16;

// A ChaCha20-Poly1305 context under one key, for transport messages (no
// associated data). Sealing and opening work in place (out == in) or from
// separate buffers.
class Aead {
 public:
  Aead() = default;
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;
  // Loads `key` (32 bytes): allocates the context. False when OpenSSL refuses.
  bool init(const uint8_t* key, bool encrypt);

  // Sealing in steps, for a plaintext gathered from several places into one
  // contiguous output: begin(counter), then update() per piece (each
  // writing its ciphertext at `out`), then finish(tag) writes the 16-byte tag.
  bool begin(uint64_t counter);
  bool update(uint8_t* out, const uint8_t* in, size_t len);
  bool finish(uint8_t* tag);

  // Opens `len` bytes at `in` sealed with `counter` and followed by `tag`,
  // writing the plaintext at `out`. False when it does not authenticate
  // (what was written at `out` is then garbage, and must be discarded).
  bool open(uint64_t counter, uint8_t* out, const uint8_t* in, size_t len, const uint8_t* tag);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_ = true;
};

// The mac1 check: keyed BLAKE2s with a 16-byte output, under the key made of
// this node's public key (HASH("mac1----" || public key), given by JS).
class Mac1 {
 public:
  Mac1() = default;
  ~Mac1();
  Mac1(const Mac1&) = delete;
  Mac1& operator=(const Mac1&) = delete;
  // (Re)keys the context: allocates it the first time. False when OpenSSL refuses.
  bool set_key(const uint8_t* key);
  // The MAC of msg[0, n) into out (16 bytes); false when OpenSSL fails or no key is set.
  bool compute(const uint8_t* msg, size_t n, uint8_t* out);
  // Whether msg[mac_at, mac_at + 16) is the MAC of msg[0, mac_at). Constant time.
  bool valid(const uint8_t* msg, size_t mac_at);

 private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace weft

#endif  // WEFT_WG_CRYPTO_H_
