// Wait on many objects at once (Python's multiprocessing.connection.wait): connections
// ready to receive, processes that ended (their sentinel), raw descriptors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/error.hpp"
#include "mpx/connection.h"

namespace mpx::conn {

// Like Python, this polls the objects' descriptors without holding the objects: an object
// destroyed by another thread during the wait does not wake it.
Status wait_many(mpx_wait_object *objects, size_t count, int64_t timeout_ms, size_t *nready);

}  // namespace mpx::conn
