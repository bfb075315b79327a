// mcache.h — the per-thread cache: one span per size class, no locks.
//
// Each entry caches one span of its class and, of that span, one 64-bit word
// of allocBits: `cache` holds the word's free objects (1 = free). The span's
// allocBits word is kept equal to ~cache, so every other thread sees exact
// allocation state. malloc takes the lowest set bit; free of an object in the
// same word sets the bit again, so a malloc/free pair reuses the same hot
// object. A free of an object elsewhere in a span the thread holds clears its
// allocBit directly; the entry finds it when its current word runs out
// (refill scans the span's words before giving the span up).
//
// Invariants for an entry with span != nullptr:
//   span->cached == 1, and span is in no mcentral list
//   span->allocBits[word] == ~cache
//   wordBase == span->base + word * 64 * elemsize
// An entry with span == nullptr has cache == 0, so the fast path falls to refill.
//
// Statistics (nmalloc, nfree) are counted per entry by the owning thread
// without atomics and merged into mheap on refill, flush and thread exit.
//
// Locks: none on the fast path; refill and flush take the class's mcentral
// lock; the registry of live mcaches has its own lock (kRankMCacheList).
#pragma once

#include <atomic>
#include <cstdint>

#include "lock.h"
#include "mspan.h"
#include "sizeclasses.h"

namespace goalloc {

struct MCacheEntry {
    std::uint64_t cache = 0;                      // free objects of word `word`
    std::atomic<std::uint64_t>* bitsWord = nullptr;  // &span->allocBits[word]
    std::uintptr_t wordBase = 0;                  // address of object word*64
    std::uintptr_t elemsize = 0;
    MSpan* span = nullptr;
    std::uint32_t word = 0;
    std::uint32_t pad = 0;
    std::uint64_t nmalloc = 0;
    std::uint64_t nfree = 0;
};
static_assert(sizeof(MCacheEntry) == 64, "an entry is one cache line");

struct alignas(64) MCache {
    MCacheEntry alloc[kNumSizeClasses];
    MCache* next = nullptr;  // registry (mcache list lock)
    MCache* prev = nullptr;

    // The entry's word ran out: find free objects in its span, else change
    // span. false if memory is exhausted.
    bool refill(int sizeclass);
    // Give every span back to its mcentral and merge statistics.
    void flush();
    void merge_stats(int sizeclass);

private:
    bool next_word(MCacheEntry* e);
    void load_word(MCacheEntry* e, std::uint32_t w);
    void release_span(MCacheEntry* e);
};

// The calling thread's mcache (initial-exec TLS: one instruction to reach;
// the library stays dlopen-able because it is a single pointer). Never null:
// a thread without a cache points at empty_mcache, whose entries have no span
// and an empty cache word, so the fast paths fall through to the slow paths
// without a separate test. empty_mcache's counters are never written.
extern MCache empty_mcache;
extern __thread MCache* tls_mcache __attribute__((tls_model("initial-exec")));
inline bool has_mcache(const MCache* c) { return c != &empty_mcache; }

// Create and register the calling thread's mcache; nullptr if out of memory.
MCache* mcache_create();
}  // namespace goalloc
