// Helpers for tests that look inside the page heap (tests/test_tiers.cpp,
// tests/test_gc_scavenge.cpp): what it maps, its Ready memory and its free
// Ready pages.
#pragma once

#include "lock.h"
#include "mheap.h"
#include "sys.h"

#include <cstddef>
#include <cstdint>

namespace gatest {

// Heap bytes mapped, Prepared or Ready.
inline std::uint64_t Mapped() { return goalloc::sys::stats.prepared.load() + goalloc::sys::stats.ready.load(); }

// Mapped Ready memory, heap and metadata (Go's mappedReady): what a memory
// limit counts.
inline std::uint64_t ReadyWithMetadata() {
    return goalloc::sys::stats.ready.load() + goalloc::sys::stats.metadata.load();
}

// Free pages not released (Go's heapFree, in pages).
inline std::size_t FreeReadyPages() { return goalloc::mheap.free_ready_bytes() / goalloc::kPageSize; }

}  // namespace gatest
