// pagealloc.h — the page heap: which pages of the mapped arenas are free.
//
// One bit per 8 KiB page in each arena's pageFree bitmap (1 = free), one
// summary per arena (free run at its start and end, longest run), and the
// arenas in a sorted array. Allocation is address-ordered first fit: walk the
// arenas from the lowest one that has a free page, skip any whose summary
// rules it out, carry a run across arenas that touch, and search the bitmap
// of the first arena that can hold the request. Freeing sets bits, so runs
// coalesce with their neighbours by construction.
//
// Cost: O(arenas) summary checks plus O(128 words) per touched arena. At
// 40 GiB of heap that is 640 summaries — a microsecond — and only span
// allocation (not object allocation) comes here. Go's radix tree of summaries
// would make it O(log n); the summary type is the seam for it.
//
// Scavenged state: pageScav bit 1 = page is Prepared (not backed). Pages added
// by grow() are Prepared; free() makes pages Ready-and-free (scav 0);
// scavenge() releases free Ready pages and sets their bits.
//
// Invariants (checked by validate()):
//   free_pages() == sum of popcount(pageFree) over arenas
//   scav_pages() == sum of popcount(pageFree & pageScav)
//   each arena's sum == summarize(pageFree)
//   no free page at or beyond mappedPages
//
// Locking: none inside; every method requires mheap.lock (or single-threaded
// use in tests). The class never touches the memory it manages, so it can be
// tested on HeapArena records with made-up base addresses.
#pragma once

#include <cstddef>
#include <cstdint>

#include "arena.h"

namespace goalloc {

// Bitmap helpers (exposed for tests).
inline constexpr std::size_t kNoPos = ~std::size_t{0};
std::size_t bitmap_next_set(const std::uint64_t* bits, std::size_t nbits, std::size_t from);
std::size_t bitmap_next_clear(const std::uint64_t* bits, std::size_t nbits, std::size_t from);
std::size_t bitmap_find_run(const std::uint64_t* bits, std::size_t nbits, std::size_t npages);
void bitmap_set(std::uint64_t* bits, std::size_t start, std::size_t n);
void bitmap_clear(std::uint64_t* bits, std::size_t start, std::size_t n);
std::size_t bitmap_count(const std::uint64_t* bits, std::size_t start, std::size_t n);
PageSummary summarize(const std::uint64_t* bits);

class PageAlloc {
public:
    // Register an arena record (base must be arena-aligned, pageFree all zero).
    // false if the sorted array could not grow.
    bool add_arena(HeapArena* a);
    // Newly mapped pages [base, base + npages*kPageSize) become free and Prepared.
    void grow(std::uintptr_t base, std::size_t npages);
    // First fit. Returns 0 if no run of npages exists. *scav gets how many of
    // the pages were Prepared; *needzero whether any may hold old data.
    std::uintptr_t alloc(std::size_t npages, std::size_t* scav, bool* needzero);
    // Take exactly [base, base + npages*kPageSize) if every page of it is
    // free; false (and nothing changes) otherwise. Used to grow a span in place.
    bool alloc_at(std::uintptr_t base, std::size_t npages, std::size_t* scav, bool* needzero);
    // Pages become free (and Ready).
    void free(std::uintptr_t base, std::size_t npages);
    // Release free Ready pages, up to max_pages, calling release(addr, bytes)
    // for each run. Returns pages released.
    template <class F>
    std::size_t scavenge(std::size_t max_pages, F release);
    // The background scavenger's step, in two halves so that the release
    // itself (a system call) runs without the lock, as Go's scavengeOne:
    // take_ready_high takes the highest run of free Ready pages — at most
    // max_pages of it, its top end — out of the free set (allocation is
    // lowest-address first, so the highest free pages are the least likely to
    // be wanted again soon) and returns its base, or 0 if there is none;
    // *npages gets its length. With align > 1 (pages, a multiple of 64: a huge
    // page's 256) only a whole aligned block of align free Ready pages is
    // taken, so that releasing it breaks no huge page. free_released gives
    // such a run back, free and Prepared (its memory released meanwhile).
    std::uintptr_t take_ready_high(std::size_t max_pages, std::size_t align, std::size_t* npages);
    void free_released(std::uintptr_t base, std::size_t npages);

    std::size_t free_pages() const { return free_pages_; }
    std::size_t scav_pages() const { return scav_pages_; }
    std::size_t narenas() const { return n_; }
    HeapArena* arena(std::size_t i) const { return arenas_[i]; }
    // Aborts with a description if an invariant is broken.
    void validate() const;

private:
    std::size_t find_arena(std::uintptr_t addr) const;  // index of the arena holding addr
    bool contains(std::uintptr_t addr) const;
    void take(std::uintptr_t base, std::size_t npages, std::size_t* scav, bool* needzero);
    void recompute_hint();
    // Calls fn(arena, first_page, npages) for each arena piece of a page range.
    template <class F>
    void for_each_piece(std::uintptr_t base, std::size_t npages, F fn);

    HeapArena** arenas_ = nullptr;  // sorted by base
    std::size_t n_ = 0;
    std::size_t cap_ = 0;
    std::size_t free_pages_ = 0;
    std::size_t scav_pages_ = 0;
    std::size_t hint_ = 0;  // no arena below this index has a free page
};

template <class F>
std::size_t PageAlloc::scavenge(std::size_t max_pages, F release) {
    std::size_t done = 0;
    for (std::size_t i = 0; i < n_ && done < max_pages; i++) {
        HeapArena* a = arenas_[i];
        std::uint64_t ready_free[kArenaBitmapWords];
        for (std::size_t w = 0; w < kArenaBitmapWords; w++) ready_free[w] = a->pageFree[w] & ~a->pageScav[w];
        std::size_t pg = 0;
        while (done < max_pages) {
            pg = bitmap_next_set(ready_free, kPagesPerArena, pg);
            if (pg == kNoPos) break;
            std::size_t end = bitmap_next_clear(ready_free, kPagesPerArena, pg);
            if (end == kNoPos) end = kPagesPerArena;
            std::size_t n = end - pg;
            if (n > max_pages - done) n = max_pages - done;
            release(a->base + pg * kPageSize, n * kPageSize);
            bitmap_set(a->pageScav, pg, n);
            scav_pages_ += n;
            done += n;
            pg += n;
        }
    }
    return done;
}

}  // namespace goalloc
