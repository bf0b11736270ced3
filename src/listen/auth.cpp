// The authkey handshake (auth.hpp), on OpenSSL's HMAC.
//
// libcrypto is loaded on the first handshake, not with libmpx: mapping and relocating it
// costs every process that loads mpx about 5 ms here (a third of a Python child's import of
// mpx), and most never authenticate. OpenSSL's headers give the types; dlsym the functions.
#include "listen/auth.hpp"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <cstring>
#include <iterator>
#include <string>

#include "mpx/listener.h"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"

namespace mpx::listen {

namespace {

#define MPX_STR2(x) #x
#define MPX_STR(x) MPX_STR2(x)
constexpr const char *kCryptoSoname = "libcrypto.so." MPX_STR(OPENSSL_VERSION_MAJOR);

// The digests a peer may name ("{sha256}..."), as Python's multiprocessing.connection knows
// them; libcrypto's EVP_<name>() gives each. An index into this table names a digest.
constexpr const char *kDigests[] = {"md5", "sha256", "sha384", "sha3_256", "sha3_384"};
constexpr int kMd5 = 0;
constexpr int kNoDigest = -1;

// The few libcrypto functions the handshake calls.
struct Crypto {
  unsigned char *(*hmac)(const EVP_MD *, const void *, int, const unsigned char *, size_t, unsigned char *,
                         unsigned int *);
  const EVP_MD *(*md[std::size(kDigests)])();
};

// libcrypto's locks know nothing of fork(): a child forked while another thread of its
// parent was inside HMAC (which fetches the digest under a global lock) would wait for that
// lock forever. Every call into libcrypto, and its loading, holds this mutex, which fork()
// takes first.
platform::ForkMutex g_crypto_mu(platform::ForkMutex::kCrypto);
Crypto g_crypto;        // under g_crypto_mu
bool g_crypto_loaded;   // under g_crypto_mu

// Under g_crypto_mu.
Status load_crypto() {
  if (g_crypto_loaded) return MPX_OK;
  void *so = dlopen(kCryptoSoname, RTLD_NOW | RTLD_LOCAL);
  if (!so) return fail(MPX_ESYS, "cannot load {} for the authkey handshake: {}", kCryptoSoname, dlerror());
  Crypto c;
  bool ok = true;
  auto sym = [&](auto *fn, const std::string &name) {
    void *p = dlsym(so, name.c_str());
    ok &= p != nullptr;
    std::memcpy(fn, &p, sizeof p);
  };
  sym(&c.hmac, "HMAC");
  for (size_t i = 0; i < std::size(kDigests); ++i) sym(&c.md[i], std::string("EVP_") + kDigests[i]);
  if (!ok) return fail(MPX_ESYS, "{} lacks a function the authkey handshake needs", kCryptoSoname);
  g_crypto = c;  // the library stays loaded for the life of the process
  g_crypto_loaded = true;
  return MPX_OK;
}

int digest_by_name(const std::string &name) {
  for (size_t i = 0; i < std::size(kDigests); ++i)
    if (name == kDigests[i]) return int(i);
  return kNoDigest;
}

// Python's _get_digest_name_and_payload: "{name}payload" with a known name, else ("", message).
void split_digest(const std::string &m, std::string *name, std::string *payload) {
  name->clear();
  *payload = m;
  if (m.size() < 2 || m[0] != '{') return;
  const size_t curly = m.find('}', 1);
  if (curly == std::string::npos || curly > 10) return;  // Python looks within _MAX_DIGEST_LEN+2
  std::string n = m.substr(1, curly - 1);
  if (digest_by_name(n) == kNoDigest) return;
  *name = std::move(n);
  *payload = m.substr(curly + 1);
}

Status hmac(const Key &key, int digest, const std::string &msg, std::string *out) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const unsigned char empty = 0;
  const void *k = key.data ? key.data : &empty;
  platform::ForkMutexGuard g(g_crypto_mu);
  if (Status s = load_crypto(); s != MPX_OK) return s;
  const EVP_MD *md = digest == kNoDigest ? nullptr : g_crypto.md[digest]();
  if (!md || !g_crypto.hmac(md, k, int(key.len), reinterpret_cast<const unsigned char *>(msg.data()), msg.size(), buf, &len))
    return fail(MPX_ESYS, "HMAC failed");
  out->assign(reinterpret_cast<char *>(buf), len);
  return MPX_OK;
}

// Constant time in the length compared, as CRYPTO_memcmp.
bool same_digest(const std::string &a, const std::string &b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return *static_cast<volatile unsigned char *>(&diff) == 0;
}

bool starts_with(const std::string &s, const char *prefix) { return s.compare(0, std::strlen(prefix), prefix) == 0; }

}  // namespace

Status make_challenge(std::string *message) {
  unsigned char r[kMessageLength];
  // From the kernel (getrandom), which needs no lock that a fork() could leave held.
  if (!platform::random_bytes(r, sizeof r)) return fail_errno("getrandom");
  *message = "{sha256}";
  message->append(reinterpret_cast<char *>(r), sizeof r);
  return MPX_OK;
}

Status verify_response(const Key &key, const std::string &message, const std::string &response, uint32_t flags) {
  std::string name, mac;
  split_digest(response, &name, &mac);
  if (name.empty()) name = "md5";
  if (name == "md5" && (flags & MPX_AUTH_REQUIRE_SHA256))
    return fail(MPX_EAUTH, "authentication failed: a legacy HMAC-MD5 answer, and sha256 is required");
  std::string expected;
  if (Status s = hmac(key, digest_by_name(name), message, &expected); s != MPX_OK) return s;
  if (!same_digest(expected, mac))
    return fail(MPX_EAUTH, "authentication failed: the peer's digest is wrong (a different authkey?)");
  return MPX_OK;
}

Status make_response(const Key &key, const std::string &message, uint32_t flags, std::string *response) {
  std::string name, payload;
  split_digest(message, &name, &payload);
  if (name.empty() || name == "md5") {
    if (flags & MPX_AUTH_REQUIRE_SHA256)
      return fail(MPX_EAUTH, "authentication failed: a legacy (HMAC-MD5) challenge, and sha256 is required");
    if (name.empty()) return hmac(key, kMd5, message, response);  // bare, as Python 3.11 expects
  }
  std::string mac;
  if (Status s = hmac(key, digest_by_name(name), message, &mac); s != MPX_OK) return s;
  *response = "{" + name + "}" + mac;
  return MPX_OK;
}

Status deliver_challenge(Channel &ch, const Key &key, uint32_t flags) {
  std::string message;
  if (Status s = make_challenge(&message); s != MPX_OK) return s;
  if (Status s = ch.send(kChallenge + message); s != MPX_OK) return s;
  std::string response;
  if (Status s = ch.recv(&response); s != MPX_OK) return s;
  if (Status s = verify_response(key, message, response, flags); s != MPX_OK) {
    ch.send(kFailure);  // best effort; the peer learns it failed
    return fail(MPX_EAUTH, "authentication failed: the peer's digest is wrong (a different authkey?)");
  }
  return ch.send(kWelcome);
}

Status answer_challenge(Channel &ch, const Key &key, uint32_t flags) {
  std::string m;
  if (Status s = ch.recv(&m); s != MPX_OK) return s;
  if (!starts_with(m, kChallenge)) return fail(MPX_EAUTH, "authentication failed: the peer sent no challenge");
  m.erase(0, std::strlen(kChallenge));
  if (m.size() < kLegacyMessageLength)
    return fail(MPX_EAUTH, "authentication failed: challenge too short ({} bytes)", m.size());
  std::string response;
  if (Status s = make_response(key, m, flags, &response); s != MPX_OK) return s;
  if (Status s = ch.send(response); s != MPX_OK) return s;
  std::string reply;
  if (Status s = ch.recv(&reply); s != MPX_OK) return s;
  if (reply != kWelcome) return fail(MPX_EAUTH, "authentication failed: the peer rejected our digest (a different authkey?)");
  return MPX_OK;
}

}  // namespace mpx::listen
