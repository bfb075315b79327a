// options.h — goalloc's configuration, read once from the environment.
//
// Every GOALLOC_* variable is read here and nowhere else (README.md has the
// table). Reading walks `environ` directly, so it never allocates and is safe
// at the first malloc of a process.
#pragma once

#include <cstdint>

namespace goalloc {

struct Options {
    int verbose = 0;          // GOALLOC_VERBOSE: 1 = heap growth and OS events to stderr
    int stats = 0;            // GOALLOC_STATS: 1 = print a statistics summary at exit
    bool arena_hints = true;  // GOALLOC_ARENA_HINTS=0: let the kernel place arenas
};

// The options, parsed at the first call (thread-safe, idempotent).
const Options& options();

// Parse a decimal integer with an optional k/m/g suffix; false on bad input.
bool parse_size(const char* s, std::uint64_t* out);

}  // namespace goalloc
