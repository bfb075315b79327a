// mheap.h — the page heap: arenas, spans, growth, large objects.
//
// The mheap owns all memory of the heap. It reserves 64 MiB arenas from the
// sys layer (with Go's address hints, from 0xc000000000 upward, so arenas are
// usually contiguous), maps them in steps of at least 4 MiB as the heap
// grows, and hands out runs of pages as spans: to an mcentral (a span of one
// size class) or directly to a large object (> 32 KiB, size class 0). A span
// freed by its mcentral or by a large free goes back to the page allocator and
// coalesces with its free neighbours.
//
// Invariants (checked by ga_heap_validate):
//   every page of every in-use span: arena.spans[page] == span, pageFree == 0
//   every free page: spans[page] == nullptr
//   spans_in_use == number of distinct in-use spans
//   sys.stats.ready + sys.stats.prepared == bytes mapped for the heap
//
// Lock: mheap.lock (rank kRankMHeap, the innermost allocator lock) guards
// pages, the arena list and growth state, spanalloc, and span state changes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "arena.h"
#include "fixalloc.h"
#include "lock.h"
#include "mcentral.h"
#include "mspan.h"
#include "pagealloc.h"

namespace goalloc {

// The largest request the heap will try (beyond it: ENOMEM at once). 2^46 bytes
// is a quarter of the user address space; larger sizes cannot be mapped.
inline constexpr std::size_t kMaxAlloc = std::size_t{1} << 46;
// A transparent huge page (x86-64's PMD size).
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Heap growth step (Go: 512 pages = 4 MiB).
inline constexpr std::size_t kHeapGrowBytes = std::size_t{4} << 20;

// Freed large spans of up to kLargeCachePages pages are kept whole, up to
// kLargeCacheBytes in all, and handed out again for a request of the same page
// count: a malloc/free loop of a 64 KiB buffer then costs a lock round trip
// instead of a page-heap search and summary update each way. Flushed by
// ga_release_free_memory.
inline constexpr std::size_t kLargeCachePages = 128;               // 1 MiB
inline constexpr std::size_t kLargeCacheBytes = std::size_t{8} << 20;

struct MHeap {
    static constexpr FixAlloc gcbits(std::uint32_t nw) {
        return FixAlloc{MSpan::bitmap_block_bytes(SpanKind::Collected, nw), 8};
    }
    static constexpr FixAlloc mbits(std::uint32_t nw) { return FixAlloc{MSpan::bitmap_block_bytes(SpanKind::Malloc, nw)}; }

    Mutex lock{kRankMHeap};
    PageAlloc pages;                        // lock
    FixAlloc spanalloc{sizeof(MSpan)};      // lock
    // lock: span bitmap blocks (MSpan::bitmap_block_bytes). Collected spans'
    // by nwords, packed 8-byte aligned, so a marker's walk over many spans'
    // gcmarkBits touches fewer lines; malloc spans' in three sizes, cache-line
    // aligned (remote frees must not share a line with another span's bits).
    FixAlloc gcbitalloc[kMaxBitmapWords] = {
        gcbits(1),  gcbits(2),  gcbits(3),  gcbits(4),  gcbits(5),  gcbits(6),  gcbits(7),  gcbits(8),
        gcbits(9),  gcbits(10), gcbits(11), gcbits(12), gcbits(13), gcbits(14), gcbits(15), gcbits(16),
    };
    FixAlloc mbitalloc[3] = {mbits(4), mbits(8), mbits(16)};  // nwords <= 4, <= 8, <= 16
    FixAlloc& bitalloc(SpanKind k, std::uint32_t nwords) {
        return k == SpanKind::Collected ? gcbitalloc[nwords - 1] : mbitalloc[nwords <= 4 ? 0 : nwords <= 8 ? 1 : 2];
    }
    std::uintptr_t cur_base = 0;            // lock: reserved, not yet grown-into part of the newest arenas
    std::uintptr_t cur_end = 0;             // lock
    // lock: [cur_base, ahead_end) is mapped ahead (sys::map_ahead, when the
    // arenas were reserved), and advised for huge pages if ahead_advised.
    std::uintptr_t ahead_end = 0;
    bool ahead_advised = false;
    std::uintptr_t next_hint = 0;           // lock: where to ask for the next arena

    MCentral central[kNumSizeClasses];      // malloc heap, one per size class

    MSpan* large_cache[kLargeCachePages + 1] = {};  // lock: by page count, linked by next
    std::size_t large_cache_bytes = 0;              // lock

    // Statistics (relaxed atomics; written under the lock or by merging mcaches).
    std::atomic<std::uint64_t> spans_in_use{0};
    std::atomic<std::uint64_t> arenas{0};
    std::atomic<std::uint64_t> large_allocs{0};
    std::atomic<std::uint64_t> large_frees{0};
    std::atomic<std::uint64_t> large_bytes{0};
    std::atomic<std::uint64_t> nmalloc[kNumSizeClasses] = {};  // merged from mcaches
    std::atomic<std::uint64_t> nfree[kNumSizeClasses] = {};

    // Allocate a span of npages (aligned to `align` bytes if > kPageSize) for
    // size class `sizeclass` (0 = one large object). nullptr if out of memory.
    MSpan* alloc_span(std::size_t npages, int sizeclass, SpanKind kind, std::size_t align = kPageSize,
                      std::size_t reserve = 0);
    void free_span(MSpan* s);
    // A large object's span is freed: keep it in the large cache or free it.
    void free_large_locked(MSpan* s);
    // Give every cached large span back to the page heap. Returns spans freed.
    std::size_t flush_large_cache();
    // Resize a large span in place to npages: shrink gives the tail back;
    // grow takes the pages right after it if they are free. false if it cannot.
    bool resize_large(MSpan* s, std::size_t npages);
    void free_span_locked(MSpan* s);
    // Release every free Ready page to the OS. Returns bytes released.
    std::size_t scavenge_all();

    // The background scavenger (Go 1.19's bgscavenge; the collector thread
    // runs it, gc/collector.cpp). scavenge_goal: how many bytes of heap to
    // keep Ready; free pages beyond it are released, the highest first. The
    // collector sets it at each mark termination (Go's gcPaceScavenger);
    // UINT64_MAX — the default, so a malloc-only process — releases nothing.
    std::atomic<std::uint64_t> scavenge_goal{UINT64_MAX};
    std::atomic<std::uint64_t> scavenged_bytes{0};  // released by scavenge_one, in all
    // Heap bytes Ready: backed, or at least not released (Go's heapRetained).
    static std::uint64_t retained();
    // Heap bytes in spans: in use or held in the large cache (Go's HeapInuse). Takes the lock.
    std::uint64_t inuse_bytes();
    // Free pages still Ready (not released): Go's heapFree. Takes the lock.
    std::uint64_t free_ready_bytes();
    // One step: take the highest run of free Ready pages, up to max_bytes of
    // it (with huge pages on: one whole, aligned, free huge page, or nothing),
    // out of the page heap under the lock, release it without the lock
    // (sys::unused: MADV_DONTNEED, which a fault waits for no more than for
    // another fault), and give it back free and Prepared, so that the next
    // span to use it starts on zero pages. Returns bytes released (0: no
    // free Ready page).
    std::size_t scavenge_one(std::size_t max_bytes);

    // Scavenging by the allocating thread (Go 1.19's mheap.allocSpan). After
    // a span is allocated, alloc_span works out what to release at once:
    //   - with a memory limit, Ready heap plus metadata beyond it (Go checks
    //     mappedReady against the limit at every span allocation);
    //   - when the allocation grew the heap and Ready heap plus the growth
    //     exceeds scavenge_growth_goal, as much as the growth, capped at the
    //     excess (Go's "scavenge down what will soon be used": fragments the
    //     request could not use go back to the OS, so that growing around them
    //     does not grow the resident set).
    // and records it in scavenge_owed (the larger of what was owed and this).
    // The thread pays it with pay_scavenge_owed as soon as it holds no lock
    // and is outside any nosuspend region (a stop of the world must not wait
    // for madvise): the malloc paths right after alloc_span, a collected
    // heap's thread after its allocation, through blocking_hook (below).
    // What nobody can pay at once (an allocation inside a nosuspend region, from a malloc
    // by the collector's own code) waits for the next one, or for the
    // collector thread. The collector sets both goals (gc/collector.cpp,
    // pace_scavenger); UINT64_MAX — the default, so a malloc-only process —
    // asks for nothing.
    // Guards: atomics, no lock. The goals are written by the collector
    // (pace_scavenger) and read by alloc_span under mheap.lock; scavenge_owed
    // is raised by alloc_span (compare-and-swap to the larger value) and
    // lowered by paying threads (compare-and-swap, by what they released).
    std::atomic<std::uint64_t> scavenge_growth_goal{UINT64_MAX};  // Go's scavenge.gcPercentGoal
    std::atomic<std::uint64_t> scavenge_limit{UINT64_MAX};        // Go's memoryLimit, in bytes
    std::atomic<std::uint64_t> scavenge_owed{0};
    std::atomic<std::uint64_t> scavenged_assist_bytes{0};  // of scavenged_bytes, released by pay_scavenge_owed
    // Release what is owed, up to 64 KiB a step (scavenge_one), taking what
    // each step released off the debt. No lock held.
    // Returns bytes released; clears the debt when no free Ready page is left.
    std::size_t pay_scavenge_owed();
    // The allocation paths' call (malloc's and the collected heap's): pays
    // when something is owed and the thread may block (no nosuspend region),
    // through blocking_hook when one is set.
    void maybe_pay_scavenge_owed() {
        if (GA_UNLIKELY(scavenge_owed.load(std::memory_order_relaxed) != 0) && tls_nosuspend == 0)
            pay_scavenge_owed_blocking();
    }
    GA_NOINLINE void pay_scavenge_owed_blocking();
    // ga_heap_validate's check of the memory states, lock held: the heap's
    // Prepared bytes are its free Prepared pages (plus any run scavenge_one
    // has out, released or about to be), and Ready + Prepared is what is mapped.
    void check_states_locked() const;
    // Ask the OS for transparent huge pages for the heap (sys::hugepage) once
    // it has mapped `from_bytes` (0: now): for what is mapped by then and for
    // every growth after. The collector sets this when it starts
    // (GOALLOC_GC_HUGEPAGES: on, or auto from kHugePagesAutoBytes); a
    // malloc-only process keeps 4 KiB pages, as glibc and jemalloc do.
    void set_hugepages_from(std::size_t from_bytes);
    // What was mapped before the switch keeps its 4 KiB pages (MADV_HUGEPAGE
    // only shapes later faults; khugepaged would collapse them at its own
    // pace, 16 MiB every 10 s by default): on a heap of 1 GiB, a quarter of
    // it, which a marker then reads with a TLB miss per access (gc_mark lists
    // of 1 GiB: 15% slower than on huge pages from the start). After the
    // switch take_collapse_request() is true once; from then on each
    // collapse_step() collapses the next huge page of those arenas
    // (sys::collapse, outside the lock; 0.7-3.9 ms a page here, ~1 s a GiB,
    // bench/results/random_access.md) and says whether any is left. One
    // thread takes the request and makes the steps: the collector thread,
    // between cycles (gc/collector.cpp, collector_thread), so that no mark
    // runs while a page is collapsed.
    bool take_collapse_request();
    bool collapse_step();
    // From the request until the last step.
    bool collapsing() const { return collapse_running.load(std::memory_order_relaxed); }
    // While a huge page of it is being collapsed (sys::collapse in progress).
    bool collapsing_page() const { return collapse_in_page.load(std::memory_order_relaxed); }

    // Span records and bitmaps on huge pages. On a heap of gigabytes the
    // markers read these at random, and with 4 KiB pages nearly each read
    // missed the TLB too (gc_mark lists of 2 GiB: 7-20% more time an object;
    // bench/results/NOTES.md, seventh pass).
    // With huge pages on, the fixallocs above take their chunks from a 2 MiB
    // huge-page region (meta_chunk, under the lock); the next region is
    // mapped and faulted in beforehand, outside the lock, by a thread that
    // may block (the collector's populate step for a heap growth): a huge
    // page's first touch zeroes 2 MiB, which a thread under the lock must not
    // do while a stop of the world waits for it. Without a region ready,
    // chunks come from sys::alloc as before.
    static constexpr std::size_t kMetaRegionBytes = std::size_t{2} << 20;
    // A fresh region for the caller to populate and hand back with
    // offer_metadata_region, or nullptr (no huge pages, one is ready, or
    // another thread is filling one).
    void* metadata_region_to_fill();
    void offer_metadata_region(void* region);
    static void* meta_chunk(std::size_t n);  // FixAlloc source; lock held

private:
    char* meta_cur = nullptr;               // lock: what is left of the current region
    std::size_t meta_left = 0;              // lock
    char* meta_spare = nullptr;             // lock: the next region, populated
    bool meta_filling = false;              // lock: a thread is filling the next region
    bool hugepages = false;                 // lock
    std::size_t hugepages_from = SIZE_MAX;  // lock
    std::size_t mapped_bytes = 0;           // lock: bytes of arena mapped (Prepared or Ready)
    std::size_t scav_loaned_pages = 0;      // lock: pages scavenge_one has taken and not yet given back
    std::atomic<bool> collapse_wanted{false};  // set under the lock at the switch; taken once
    std::size_t collapse_narenas = 0;       // lock: arenas mapped at the switch
    // Written by the collapsing thread (the one that took the request:
    // the collector's); read by anyone.
    std::atomic<bool> collapse_running{false};  // request taken, steps left
    std::atomic<bool> collapse_in_page{false};  // around each sys::collapse
    // The collapsing thread only: the next arena (index) and offset.
    std::size_t collapse_arena = 0;
    std::size_t collapse_off = 0;
    void enable_hugepages_locked();
    void note_grown(std::uintptr_t base, std::size_t bytes);
    bool grow_locked(std::size_t npages);
    void owe_scavenge_locked(std::size_t grown);
    bool map_for_growth(std::uintptr_t base, std::size_t n);
    bool new_arenas_locked(std::size_t bytes);
};

extern MHeap mheap;

// Called (under mheap.lock: it must only record and wake, never block) with
// each range the heap maps as it grows, and whether it asked for huge pages
// for it. The collector sets it to have the range faulted in before the
// allocating threads touch it one page fault at a time (gc/collector.cpp):
// by a background thread, or, with huge pages, by the growing thread itself
// outside the lock.
extern std::atomic<void (*)(std::uintptr_t base, std::size_t bytes, bool huge)> heap_grow_hook;

// How an allocating thread runs a call that may block for long (the
// madvise calls of pay_scavenge_owed). The collector sets it to its
// blocking call (gc/world.cpp), so that a stop of the world claims a
// registered thread in it instead of waiting for it; unset, the call is
// made directly. fn touches no collected object (a claimed thread counts
// as stopped, its stack scanned as it is).
extern std::atomic<void (*)(void (*fn)(void*), void* arg)> blocking_hook;

// One-time initialisation of the process-wide heap (idempotent, thread-safe).
void heap_init();

}  // namespace goalloc
