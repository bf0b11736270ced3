// Client side (mpx_client_connect): a blocking connect and handshake with a deadline.
#pragma once

#include "core/error.hpp"
#include "mpx/listener.h"

namespace mpx::listen {

// Connect to address and authenticate; *fd receives the connected, blocking socket.
Status client_connect(const char *address, const mpx_client_options *opts, int *fd);

}  // namespace mpx::listen
