// mcache.h — the per-thread cache: one span per size class to allocate from, the
// other spans the thread owns, no locks.
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
// Ownership: every span an mcache takes from its mcentral stays owned by the
// thread until it is empty or the thread exits — not only the one its entry
// allocates from. This is where goalloc departs from Go, which has no free:
// a thread that fills spans and later frees their objects (building and
// dropping a tree, a batch, a request's buffers) frees into spans it owns,
// without atomics, and reuses them first. Owned spans are on two per-class
// lists kept by the thread alone: owned_partial (free objects known) and
// owned_full. Other threads' frees into an owned span go to its remoteBits;
// the first of them pushes the span on the owner's notify stack, which the
// owner drains when it refills.
//
// Invariants for an entry with span != nullptr:
//   span->owner == this mcache, and span is on no list
//   span->allocBits[word] == ~cache
//   wordBase == span->base + word * 64 * elemsize
// An entry with span == nullptr has cache == 0, so the fast path falls to refill.
//
// Statistics (nmalloc, nfree) are counted per entry by the owning thread
// without atomics and merged into mheap in batches (on a refill once 4096
// operations have accumulated), on flush and at thread exit.
//
// Locks: none on the fast path; refill and flush take the class's mcentral
// lock; the registry of live mcaches has its own lock (kRankMCacheList).
#pragma once

#include <atomic>
#include <cstdint>

#include "lock.h"
#include "mcentral.h"
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
    SpanList owned_partial[kNumSizeClasses];  // owner thread only
    SpanList owned_full[kNumSizeClasses];     // owner thread only
    // Spans with a first pending remote free: pushed by other threads holding
    // the span's mcentral lock, popped (all at once) by the owner.
    std::atomic<MSpan*> notify_head{nullptr};
    std::uint32_t owned_empty[kNumSizeClasses] = {};  // owner thread: empty spans kept
    std::size_t owned_empty_bytes = 0;                // owner thread: their bytes
    MCache* next = nullptr;  // registry (mcache list lock)
    MCache* prev = nullptr;

    // The entry's word ran out: find free objects in its span, else change
    // span. false if memory is exhausted.
    bool refill(int sizeclass);
    // Give every span back to its mcentral and merge statistics.
    void flush();
    void merge_stats(int sizeclass);
    // The owning thread frees object idx of s, an owned span other than its
    // entry's current one. Aborts on a double free.
    void owned_free(const char* fn, std::uintptr_t a, MSpan* s, std::uint32_t idx);
    // Called by a remote freer holding s's mcentral lock, s->owner == this.
    void notify_locked(MSpan* s);
    // s, unowned until now, was just taken from its mcentral with owner = this
    // (MCentral::adopt): drain it and put it on an owned list.
    void adopt(MSpan* s);

private:
    void take_notified();
    bool keep_empty(int sc);  // count one more kept empty span, if the budget allows
    void unkeep_empty(int sc);
    void settle(MSpan* s);  // after a drain: list s by its state, or give it back
    bool next_word(MCacheEntry* e);
    void load_word(MCacheEntry* e, std::uint32_t w);
    void release_span(MCacheEntry* e);
    void give_back(MSpan* s);
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
