// Address strings of mpx/listener.h: a unix path (contains '/'), "@name" (Linux abstract),
// "host:port" and "[v6]:port" (TCP).
#pragma once

#include <sys/socket.h>

#include <string>

#include "core/error.hpp"

namespace mpx::listen {

struct Address {
  sockaddr_storage sa{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  bool is_unix_path() const;
};

// Parse (resolving a TCP host name with getaddrinfo; the first result is used).
Status parse_address(const char *text, Address *out);
// Format a socket address as an address string ("" for an unnamed unix socket).
std::string format_address(const sockaddr *sa, socklen_t len);
// A TCP peer on loopback, or any unix socket peer.
bool is_local_peer(const sockaddr *sa, socklen_t len);

}  // namespace mpx::listen
