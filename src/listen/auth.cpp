// The authkey handshake (auth.hpp), on OpenSSL's HMAC.
#include "listen/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "mpx/listener.h"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"

namespace mpx::listen {

namespace {

const EVP_MD *digest_by_name(const std::string &name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

// Python's _get_digest_name_and_payload: "{name}payload" with a known name, else ("", message).
void split_digest(const std::string &m, std::string *name, std::string *payload) {
  name->clear();
  *payload = m;
  if (m.size() < 2 || m[0] != '{') return;
  const size_t curly = m.find('}', 1);
  if (curly == std::string::npos || curly > 10) return;  // Python looks within _MAX_DIGEST_LEN+2
  std::string n = m.substr(1, curly - 1);
  if (!digest_by_name(n)) return;
  *name = std::move(n);
  *payload = m.substr(curly + 1);
}

// libcrypto's locks know nothing of fork(): a child forked while another thread of its
// parent was inside HMAC (which fetches the digest under a global lock) would wait for that
// lock forever. Every call into libcrypto holds this mutex, which fork() takes first.
platform::ForkMutex g_crypto_mu(platform::ForkMutex::kCrypto);

Status hmac(const Key &key, const EVP_MD *md, const std::string &msg, std::string *out) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const unsigned char empty = 0;
  const void *k = key.data ? key.data : &empty;
  platform::ForkMutexGuard g(g_crypto_mu);
  if (!HMAC(md, k, int(key.len), reinterpret_cast<const unsigned char *>(msg.data()), msg.size(), buf, &len))
    return fail(MPX_ESYS, "HMAC failed");
  out->assign(reinterpret_cast<char *>(buf), len);
  return MPX_OK;
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
  if (expected.size() != mac.size() || CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) != 0)
    return fail(MPX_EAUTH, "authentication failed: the peer's digest is wrong (a different authkey?)");
  return MPX_OK;
}

Status make_response(const Key &key, const std::string &message, uint32_t flags, std::string *response) {
  std::string name, payload;
  split_digest(message, &name, &payload);
  if (name.empty() || name == "md5") {
    if (flags & MPX_AUTH_REQUIRE_SHA256)
      return fail(MPX_EAUTH, "authentication failed: a legacy (HMAC-MD5) challenge, and sha256 is required");
    if (name.empty()) return hmac(key, EVP_md5(), message, response);  // bare, as Python 3.11 expects
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
