// Address strings (address.hpp).
#include "listen/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>

namespace mpx::listen {

bool Address::is_unix_path() const {
  if (family != AF_UNIX) return false;
  const auto *un = reinterpret_cast<const sockaddr_un *>(&sa);
  return len > offsetof(sockaddr_un, sun_path) && un->sun_path[0] != '\0';
}

Status parse_address(const char *text, Address *out) {
  if (!text || !*text) return fail(MPX_EINVAL, "the address is NULL or empty");
  const std::string s(text);
  *out = Address{};
  if (s[0] == '@' || s.find('/') != std::string::npos) {
    auto *un = reinterpret_cast<sockaddr_un *>(&out->sa);
    if (s.size() >= sizeof un->sun_path)
      return fail(MPX_EINVAL, "unix socket address '{}' is longer than {} bytes", s, sizeof un->sun_path - 1);
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, s.data(), s.size());
    if (s[0] == '@') un->sun_path[0] = '\0';  // abstract: no NUL terminator counted
    out->len = socklen_t(offsetof(sockaddr_un, sun_path) + s.size() + (s[0] == '@' ? 0 : 1));
    out->family = AF_UNIX;
    return MPX_OK;
  }
  std::string host, port;
  if (s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return fail(MPX_EINVAL, "address '{}': expected [v6addr]:port", s);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      return fail(MPX_EINVAL, "address '{}': expected a path with '/', @name, host:port or [v6addr]:port", s);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoul(port) > 65535)
    return fail(MPX_EINVAL, "address '{}': bad port", s);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo *res = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res) return fail(MPX_ENOENT, "address '{}': cannot resolve '{}': {}", s, host, gai_strerror(rc));
  std::memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  out->family = res->ai_family;
  freeaddrinfo(res);
  return MPX_OK;
}

std::string format_address(const sockaddr *sa, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  if (sa->sa_family == AF_UNIX) {
    const auto *un = reinterpret_cast<const sockaddr_un *>(sa);
    const size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) return "";
    if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
    return std::string(un->sun_path, strnlen(un->sun_path, n));
  }
  return "";
}

bool is_local_peer(const sockaddr *sa, socklen_t) {
  if (sa->sa_family == AF_UNIX) return true;
  if (sa->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) return in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace mpx::listen
