// options.h — goalloc's configuration, read once from the environment.
//
// Every GOALLOC_* variable is read here and nowhere else (README.md has the
// table). Reading walks `environ` directly, so it never allocates and is safe
// at the first malloc of a process.
#pragma once

#include <cstdint>
#include <climits>

namespace goalloc {

struct Options {
    int verbose = 0;          // GOALLOC_VERBOSE: 1 = heap growth and OS events to stderr
    int stats = 0;            // GOALLOC_STATS: 1 = print a statistics summary at exit
    bool arena_hints = true;  // GOALLOC_ARENA_HINTS=0: let the kernel place arenas
    // The collector (gc/), with Go's own variables:
    int gogc = 100;                           // GOGC: percent, or -1 for "off"
    std::int64_t memlimit = INT64_MAX;        // GOMEMLIMIT: bytes (suffixes B KiB MiB GiB TiB), "off"
    int gctrace = 0;                          // GODEBUG=gctrace=1 or GOALLOC_DEBUG=gctrace=1
    int gccheckmark = 0;                      // GODEBUG=gccheckmark=1 or GOALLOC_DEBUG=gccheckmark=1
    int gcpacertrace = 0;                     // GODEBUG=gcpacertrace=1: Go's pacer line per cycle
    int gcstoptheworld = 0;                   // GODEBUG=gcstoptheworld=1: mark with the world stopped
    int gcidlemark = 1;                       // GOALLOC_GC_IDLE_MARK: 1 = the background mark worker
                                              // runs flat out while CPUs are idle (Go's idle workers);
                                              // 0 = it keeps to 25% of the CPUs, assists included
    int gcfractional = 1;                     // GOALLOC_GC_FRACTIONAL: 1 = while the background worker
                                              // marks on an idle CPU, allocating threads mark for Go's
                                              // fractional share of their time; 0 = they do not
    int gcbgsweep = 1;                        // GOALLOC_GC_BG_SWEEP: 0 = the collector thread does no
                                              // background sweeping (allocating threads' proportional
                                              // sweep and sweep termination do it all; a diagnostic)
    int gcscavenge = 1;                       // GOALLOC_GC_SCAVENGE: 1 = the collector thread returns free
                                              // heap pages beyond Go's retention goal to the OS between
                                              // cycles (Go's background scavenger); 0 = it does not
    int gcprefault = 0;                       // GOALLOC_GC_PREFAULT: 1 = a background thread faults in
                                              // the pages of each heap growth before first use
    int gchugepages = -1;                     // GOALLOC_GC_HUGEPAGES: 1 = once the collector starts, the
                                              // heap's memory asks for transparent huge pages; 0 = never;
                                              // auto (-1, default) = once the heap has mapped 256 MiB
    int gctriggermin = 70;                    // GOALLOC_GC_TRIGGER_MIN: the pacer's lower bound on the
                                              // trigger, in percent of the way from the marked heap to
                                              // the goal (50-95; 70 is Go's, 45/64)
    int gcmarkprefetch = 0;                   // GOALLOC_GC_MARK_PREFETCH: 0 = auto (each marker times
                                              // both ways, gc/mark.cpp), 1 = always through the
                                              // prefetch FIFO, 2 = never (a diagnostic, and tests)
    int gcpoison = -1;                        // GOALLOC_GC_POISON: 1 = fill swept objects with 0xdb
                                              // (-1: on at GOALLOC_DEBUG_LEVEL >= 2)
};

// The options, parsed at the first call (thread-safe, idempotent).
const Options& options();

// Parse a decimal integer with an optional k/m/g suffix; false on bad input.
bool parse_size(const char* s, std::uint64_t* out);
// GOMEMLIMIT syntax (Go's): bytes with an optional B/KiB/MiB/GiB/TiB suffix, or "off".
bool parse_memlimit(const char* s, std::int64_t* out);

}  // namespace goalloc
