// mcentral.h — the central free lists: one per size class of the malloc heap.
//
// An mcentral holds the spans of its class that no thread owns, in two lists:
//   partial  spans that have (or may soon have, through pending remote frees)
//            free objects;
//   full     spans with every object allocated and nothing pending.
// mcaches take spans from partial (cache_span) and own them from then on:
// the owning thread allocates from them and frees into them without atomics,
// full or not, until a span is empty or the thread exits; then it comes back
// (uncache_span). A span is in at most one list, and never in an mcentral list
// while owned (span.owner != nullptr).
//
// Empty spans: an mcentral keeps up to kMaxEmptySpans spans with no live
// object at the back of its partial list, so a program that repeatedly fills
// and empties a span does not go to the mheap each time; further empty spans
// go back to the mheap at once, and ga_release_free_memory returns all.
//
// Remote frees (a thread frees an object of a span it does not own) are
// lock-free: the freeing thread sets the object's bit in span.remoteBits. It
// takes this lock only when it is the first pending remote free on a span
// (to move an unowned span from full to partial, or to push an owned span on
// its owner's notify stack) or when its free may empty an unowned span (to
// give it back). See the free path in malloc.cpp.
//
// The ordering argument for "no span is stranded in full with a free object":
// the remote freer does remoteCount.fetch_add (seq_cst) and then loads
// span.owner (seq_cst); uncache_span stores owner = nullptr (seq_cst) and then
// loads remoteCount. One of the two sees the other, so either the freer
// notifies under the lock or the span goes to partial.
//
// Lock: MCentral.lock (rank kRankMCentral); may take mheap.lock while held.
#pragma once

#include <cstdint>

#include "lock.h"
#include "mspan.h"

namespace goalloc {

// Intrusive doubly linked list of spans (guarded by the owner's lock).
struct SpanList {
    MSpan* head = nullptr;
    MSpan* tail = nullptr;
    std::size_t count = 0;
    void push_back(MSpan* s, std::uint8_t id);
    void remove(MSpan* s);
    MSpan* pop_front();
};

inline constexpr std::size_t kMaxEmptySpans = 1;

struct alignas(64) MCentral {
    Mutex lock{kRankMCentral};
    int sizeclass = 0;      // set once by the heap's initialisation
    SpanList partial;       // lock
    SpanList full;          // lock
    std::size_t nempty = 0; // lock: spans in partial known to be empty

    // A span with at least one free object, owned by c from now on, drained
    // of remote frees, with allocCount exact. nullptr if memory is exhausted.
    MSpan* cache_span(MCache* c);
    // Take back a span its owner gives up (on no owner list); allocCount must
    // be exact. Refuses (false) a span that sits on its owner's notify stack:
    // the owner must pop the stack first.
    bool uncache_span(MSpan* s);
    // Caller holds lock and has published a remote free on s: move s from full
    // to partial, and if its pending frees may empty it, drain it and keep or
    // give it back as an empty span.
    void remote_free_locked(MSpan* s);
    // A thread frees into s, which no thread owns: make it the owner (the
    // thread will free into it and reuse it without atomics). false if s got an
    // owner meanwhile.
    bool adopt(MSpan* s, MCache* c);
    // Give every empty span in partial back to the heap (malloc_trim). Returns spans freed.
    std::size_t release_empty();

private:
    // s (drained, unowned, allocCount 0, in no list) has no live object.
    void put_empty_locked(MSpan* s);
};

}  // namespace goalloc
