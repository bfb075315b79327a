// arena.h — heap arenas and the arena index: address -> span in O(1).
//
// The heap is made of 64 MiB arenas (Go's heapArenaBytes on 64-bit Linux).
// Each arena has an out-of-band HeapArena record with:
//   spans[i]    the mspan that owns page i, or nullptr. Every page of an in-use
//               span points to it; pages of free runs are nullptr.
//   pageFree    one bit per page: 1 = free in the page heap.
//   pageScav    one bit per page: 1 = Prepared (not backed by memory: fresh from
//               the OS or scavenged), 0 = Ready. Meaningful for free pages;
//               pages of in-use spans are always 0.
//   sum         first-fit summary of pageFree: free run at the start, at the
//               end, and the longest run (Go's pallocSum, one level).
//
// The arena index is Go's arena map with one level (as on linux/amd64): 2^22
// entries cover the 48-bit user address space. It lives in .bss, so only the
// pages of it that are written ever cost memory.
//
// Locks: spans[], pageFree, pageScav and sum are written under mheap.lock.
// spans[] and the index are read without it (by free and usable_size): entries
// are atomic, written before the memory they describe is handed out, so a
// lookup of an address that was returned by malloc always sees its span.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sizeclasses.h"

namespace goalloc {

struct MSpan;

inline constexpr std::size_t kArenaShift = 26;
inline constexpr std::size_t kArenaBytes = std::size_t{1} << kArenaShift;  // 64 MiB
inline constexpr std::size_t kPagesPerArena = kArenaBytes / kPageSize;     // 8192
inline constexpr std::size_t kArenaBitmapWords = kPagesPerArena / 64;      // 128
inline constexpr std::size_t kArenaIndexBits = 48 - kArenaShift;           // 22
inline constexpr std::size_t kArenaIndexEntries = std::size_t{1} << kArenaIndexBits;

struct PageSummary {
    std::uint32_t start = 0;  // free pages at the start of the arena
    std::uint32_t end = 0;    // free pages at the end
    std::uint32_t max = 0;    // longest free run
    std::uint32_t maxAt = 0;  // where a longest run starts (for incremental updates)
};

struct HeapArena {
    std::atomic<MSpan*> spans[kPagesPerArena];
    std::uint64_t pageFree[kArenaBitmapWords];
    std::uint64_t pageScav[kArenaBitmapWords];
    std::uintptr_t base;
    std::uint32_t mappedPages;  // pages [0, mappedPages) are Prepared or Ready; the rest Reserved
    PageSummary sum;
};

extern std::atomic<HeapArena*> arena_index[kArenaIndexEntries];
// Lowest and one past the highest address of any registered arena (0, 0 if
// none); only widen. A value outside is not a heap pointer, and a lookup
// need not touch arena_index (32 MiB, mostly never-touched zero pages: a
// conservative scan indexing it with stray values page-faulted per new page).
extern std::atomic<std::uintptr_t> arena_lo, arena_hi;
inline bool in_arena_range(std::uintptr_t addr) {
    std::uintptr_t lo = arena_lo.load(std::memory_order_relaxed);
    return addr - lo < arena_hi.load(std::memory_order_relaxed) - lo;
}

inline HeapArena* arena_of(std::uintptr_t addr) {
    std::uintptr_t i = addr >> kArenaShift;
    if (__builtin_expect(i >= kArenaIndexEntries, 0)) return nullptr;
    return arena_index[i].load(std::memory_order_relaxed);
}

// The span owning `addr`, or nullptr. O(1): two dependent loads.
inline MSpan* span_of(std::uintptr_t addr) {
    HeapArena* a = arena_of(addr);
    if (__builtin_expect(a == nullptr, 0)) return nullptr;
    return a->spans[(addr >> kPageShift) & (kPagesPerArena - 1)].load(std::memory_order_relaxed);
}

}  // namespace goalloc
