// The authkey handshake of Python's multiprocessing.connection (deliver_challenge /
// answer_challenge), over any message channel. Python 3.12+: "#CHALLENGE#{sha256}" + 40
// random bytes, answered by "{sha256}" + HMAC-SHA256 of the whole message after the
// "#CHALLENGE#" prefix. Python 3.11 and older ("legacy"): 20 random bytes, answered by a bare
// HMAC-MD5. Every comparison of a MAC is constant-time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace mpx::listen {

inline constexpr const char kChallenge[] = "#CHALLENGE#";
inline constexpr const char kWelcome[] = "#WELCOME#";
inline constexpr const char kFailure[] = "#FAILURE#";
inline constexpr size_t kMaxHandshakeMessage = 256;  // Python's _MAX_DIGEST_LEN cap on recv_bytes
inline constexpr size_t kMessageLength = 40;         // random bytes of a modern challenge
inline constexpr size_t kLegacyMessageLength = 20;   // the minimum a challenge may carry

struct Key {
  const void *data = nullptr;
  size_t len = 0;
};

// The challenge body (without "#CHALLENGE#"): "{sha256}" + 40 random bytes.
Status make_challenge(std::string *message);
// Check `response` to the challenge body `message`: MPX_OK or MPX_EAUTH.
Status verify_response(const Key &key, const std::string &message, const std::string &response, uint32_t flags);
// The answer to a challenge body (without "#CHALLENGE#"); MPX_EAUTH when it cannot be answered.
Status make_response(const Key &key, const std::string &message, uint32_t flags, std::string *response);

// A channel carrying whole messages.
class Channel {
 public:
  virtual ~Channel() = default;
  virtual Status send(const std::string &m) = 0;
  // Receive one message of at most kMaxHandshakeMessage bytes.
  virtual Status recv(std::string *m) = 0;
};

// Python's deliver_challenge and answer_challenge. MPX_EAUTH on a wrong key.
Status deliver_challenge(Channel &ch, const Key &key, uint32_t flags);
Status answer_challenge(Channel &ch, const Key &key, uint32_t flags);

}  // namespace mpx::listen
