// The segment tracker: removes the named segments a process created once that process has
// died and no process holds them any more (not while another process is still attached:
// CPython gh-82300). Every mpx handle on a named segment holds a shared flock on it; the
// tracker, a small daemon per creating process, takes the exclusive lock to learn that
// nobody is left.
#pragma once

#include <cstdint>
#include <string>

namespace mpx::tracker {

// The creating process registers each named segment it creates, and unregisters the ones
// it unlinks itself. Failures are not fatal: the segment then simply is not tracked.
void track(const std::string &name, uint64_t inode) noexcept;
void untrack(const std::string &name) noexcept;

}  // namespace mpx::tracker
