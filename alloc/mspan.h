// mspan.h — a span: a run of pages holding objects of one size class, or one
// large object (size class 0). Metadata is out of band: nothing of an mspan
// lives inside the memory it describes.
//
// Objects are numbered 0..nelems-1; object i starts at base + i*elemsize.
// Address -> index divides by elemsize with Go's magic multiply:
//   index = ((addr - base) * divMul) >> 32,  divMul = ceil(2^32 / elemsize),
// exact for every offset in the span (checked by the generator).
//
// Bitmaps (nwords = ceil(nelems/64) words, at most 16) are out of band like
// Go's gcBits, one block per span from the mheap's bitmap fixallocs, sized
// to the span (bitmap_block_bytes); the record itself is three cache lines.
//   Collected spans: [allocBits | gcmarkBits (| remoteBits)] at first,
//     nwords words each, blocks packed 8-byte aligned (a span of 64-byte
//     objects carries 32 bytes of bitmaps): markers touch fewer lines.
//   Malloc spans: [allocBits (| remoteBits)], each on cache lines of its own
//     (remote freers RMW remoteBits while the holder writes allocBits), and
//     no gcmarkBits (nullptr: nothing marks them).
//   remoteBits of up to 4 words (objects of 32 bytes and up) sit in the
//   record, beside remoteCount (remoteInline).
//   allocBits[i]  1 = object i is allocated. Unlike Go, where objects below
//                 freeindex are implicitly allocated, goalloc keeps allocBits
//                 exact, because explicit free needs to tell a double free.
//                 Bits >= nelems are always 1, so a scan never hands them out.
//   gcmarkBits    the collector's mark bits; sweep makes allocBits = gcmarkBits
//                 by swapping the two pointers (Go's scheme). Tail bits are 1 too.
//   remoteBits[i] 1 = object i was freed by a thread that does not hold the span
//                 and the holder has not yet drained it.
// Go's freeindex and allocCache (ctz over the inverted allocBits) live in the
// caching mcache's entry as (word, cache): the scan position and the inverted
// allocBits word being allocated from. Keeping them there, next to the
// thread's other hot state, saves a load per malloc; a span's scan state only
// matters while an mcache holds it.
//
// Who writes what — the "holder" of a span is the mcache that caches it, or,
// while no mcache does, whoever holds the lock of its mcentral:
//   base..kind, state:   mheap.allocSpan/freeSpan under mheap.lock.
//   allocBits:           the holder only (relaxed atomic stores so that other
//                        threads may read them to check a free).
//   allocCount:          the holder; exact whenever the span is not the one an
//                        mcache entry allocates from (pending remote frees count
//                        as allocated until drained).
//   owner:               mcentral, under its lock.
//   next/prev/list:      mcentral under its lock, or the owning thread.
//   remoteBits/Count:    any thread, with atomic RMW; cleared by the holder (drain).
// Invariant, for a span no mcache entry allocates from, at rest:
//   allocCount == popcount(allocBits without tail) and
//   live objects == allocCount - popcount(remoteBits).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "internal.h"
#include "sizeclasses.h"

namespace goalloc {

inline constexpr std::size_t kMaxBitmapWords = (kMaxObjsPerSpan + 63) / 64;

// Dead: free (its record is in the fixalloc). InUse: holds objects.
// LargeCached: a freed large span kept whole by the mheap for reuse; its pages
// still map to it, so a free through a stale pointer is reported, not obeyed.
enum class SpanState : std::uint8_t { Dead = 0, InUse = 1, LargeCached = 2 };
// Malloc spans are freed explicitly and never swept; Collected spans belong to
// the garbage collector and are swept. They never share an mcentral.
enum class SpanKind : std::uint8_t { Malloc = 0, Collected = 1 };
// Which list a span is on: an mcentral's (partial, full), or, while a thread
// owns it, that thread's mcache's (owned partial, owned full). The span an
// mcache entry allocates from is on no list.
enum SpanListId : std::uint8_t {
    kListNone = 0,
    kListPartial = 1,
    kListFull = 2,
    kListOwnedPartial = 3,
    kListOwnedFull = 4,
};

// Span class = size class << 1 | noscan (Go's spanClass).
inline constexpr std::uint8_t make_spanclass(int sizeclass, bool noscan) {
    return static_cast<std::uint8_t>(sizeclass << 1 | (noscan ? 1 : 0));
}
inline constexpr int kNumSpanClasses = kNumSizeClasses << 1;

struct MCache;

struct alignas(64) MSpan {
    // --- immutable while in use (mheap.lock when set) ---
    std::uintptr_t base = 0;
    std::uintptr_t limit = 0;     // base + nelems * elemsize
    std::uintptr_t elemsize = 0;  // npages * kPageSize for large spans
    std::uint32_t npages = 0;
    std::uint32_t nelems = 0;
    std::uint32_t divMul = 0;     // 0 for large spans: every offset maps to index 0
    std::uint8_t sizeclass = 0;
    std::uint8_t spanclass = 0;
    std::uint8_t nwords = 0;
    SpanKind kind = SpanKind::Malloc;
    bool needzero = false;        // memory may hold old data (calloc must clear)
    std::atomic<SpanState> state{SpanState::Dead};
    // gc: kSpanOobHeapBits, kSpanBlackCache — written by the span's holder
    // (or the collector, world stopped or thread claimed); read by markers
    // without synchronisation (gc/mark.cpp's shade says why that is enough).
    // In the first cache line: shade reads it for every object.
    std::uint8_t gcflags = 0;
    // gc, uniform scan spans: how many Ptr<> fields the uniform type has when
    // they are its first words and nothing pointer-like follows (its mask is
    // 0...01...1), else 0. Written by the allocating thread before it
    // publishes uniform (release); markers read it after uniform (acquire).
    // In the first cache line, beside what the marker reads for each object.
    std::atomic<std::uint8_t> scan_dense{0};

    // --- holder ---
    std::atomic<std::uint64_t>* gcmarkBits = nullptr;
    // gc: the one type (TypeInfo) of every object allocated in this scan span,
    // so that its heap bits need not be written (see gc/heap.cpp);
    // kUniformUnset while empty, nullptr once types mixed (heapBits rule).
    // In the first line: a marker scanning a uniform span's object reads
    // nothing of the record beyond it (bounds, span class, gcmarkBits).
    std::atomic<const void*> uniform{nullptr};
    // (Second line.) Markers read allocBits only for conservative words.
    std::atomic<std::uint64_t>* allocBits = nullptr;
    std::atomic<std::uint32_t> allocCount{0};
    std::atomic<std::uint32_t> sweepgen{0};  // for the collector (Go's sweepgen states)

    // --- ownership ---
    // owner: the mcache that holds the span, or nullptr while its mcentral
    // does. Changed only under the mcentral lock (cache_span, uncache_span).
    std::atomic<MCache*> owner{nullptr};
    // Lists: an mcentral's under its lock, or the owner's (owner thread only).
    MSpan* next = nullptr;
    MSpan* prev = nullptr;
    std::uint8_t list = kListNone;
    // The owner's notify stack: a remote freer that finds the first pending
    // free on an owned span pushes it there (under the mcentral lock), so the
    // owner learns of free objects in spans it is not looking at.
    std::atomic<std::uint8_t> notified{0};
    MSpan* notifyNext = nullptr;

    // --- collected spans only (gc/), read by markers for the objects of
    // mixed spans: kept in the record's second cache line, beside sweepgen ---
    // heapBits: one bit per word of the span, 1 = the word may hold a pointer
    // to a collected object; it lives in the last bytes of a scan span's own
    // memory (the `reserve` of init). nullptr for noscan spans.
    std::atomic<std::uint64_t>* heapBits = nullptr;

    // --- any thread (atomic RMW); its own cache line, away from the holder's fields ---
    alignas(64) std::atomic<std::uint32_t> remoteCount{0};
    std::atomic<std::uint8_t> specials{0};  // collected spans: has finalizers (gc finalizer lock)
    std::atomic<std::uint64_t>* remoteBits = nullptr;  // set by init: remoteInline or in the block
    void* bitBlock = nullptr;  // the span's bitmap block (set by init; goes back with the record)
    std::uint64_t* checkmarkBits = nullptr;  // collected spans: checkmark mode, world stopped only
    // remoteBits of spans with at most kInlineRemoteWords words: on the line
    // of remoteCount, which a remote freer has just taken, so the free's
    // second RMW costs no second line.
    static constexpr std::uint32_t kInlineRemoteWords = 4;
    std::atomic<std::uint64_t> remoteInline[kInlineRemoteWords];

    // Bitmap words per bitmap (nwords) of a span of npages pages of size
    // class sizeclass with `reserve` bytes kept back.
    static std::uint32_t bitmap_words(std::uint32_t npages, int sizeclass, std::size_t reserve = 0);
    // Bytes of the bitmap block of a span of this kind with nwords words per
    // bitmap (malloc spans' blocks are whole cache lines and must be
    // line-aligned; collected spans' need 8-byte alignment).
    static constexpr std::size_t bitmap_block_bytes(SpanKind k, std::uint32_t nwords) {
        std::size_t n = std::size_t{nwords} * 8, line = (n + 63) & ~std::size_t{63};
        bool remote_here = nwords > kInlineRemoteWords;
        return k == SpanKind::Collected ? (remote_here ? 3 : 2) * n : (remote_here ? 2 : 1) * line;
    }
    // Set up a fresh span (caller: mheap under its lock). `reserve` bytes at
    // the end of the span are not used for objects (a collected span's
    // heapBits). `block`: the span's bitmap block (bitmap_block_bytes, zeroed
    // or not).
    void init(std::uintptr_t base, std::uint32_t npages, int sizeclass, SpanKind kind, std::size_t reserve,
              void* block);

    std::uint32_t index_of(std::uintptr_t p) const {
        return static_cast<std::uint32_t>(((p - base) * divMul) >> 32);
    }
    std::uintptr_t object_base(std::uint32_t idx) const { return base + idx * elemsize; }
    bool is_allocated(std::uint32_t idx) const {
        return (allocBits[idx >> 6].load(std::memory_order_relaxed) >> (idx & 63)) & 1;
    }
    std::uint64_t tail_mask(std::uint32_t w) const;  // bits of word w that are >= nelems
    // Objects marked allocated in allocBits (exact when no one is changing them).
    std::uint32_t count_alloc() const;
    std::uint32_t count_remote() const;
    // Holder only: apply pending remote frees to allocBits. Returns how many.
    // Aborts naming the address if a remotely freed object was already free.
    std::uint32_t drain_remote();
};

// Misuse reports: all abort with "goalloc: <fn>(): ... <address>".
[[noreturn]] GA_COLD void misuse_double_free(const char* fn, std::uintptr_t p, const MSpan* s);
[[noreturn]] GA_COLD void misuse_invalid(const char* fn, std::uintptr_t p, const char* why);
[[noreturn]] GA_COLD void misuse_interior(const char* fn, std::uintptr_t p, std::uintptr_t start);

}  // namespace goalloc
