// sys.h — the only layer that talks to the OS about memory.
//
// Address space moves through Go's four states (runtime/mem.go):
//
//   None     --reserve-->  Reserved   (PROT_NONE: address space only, no commit)
//   Reserved --map------>  Prepared   (read/write; committed but not backed)
//   Prepared --used----->  Ready      (handed out; the kernel backs it on touch)
//   Ready    --unused--->  Prepared   (madvise(MADV_DONTNEED): pages return to the OS)
//   any      --free----->  None       (munmap)
//
// plus alloc(), None -> Ready in one step, for out-of-band metadata.
//
// Accounting invariant (all figures in bytes, updated with relaxed atomics):
//   reserved >= prepared + ready      (heap states; metadata is counted apart)
//   ga_stats.bytes_mapped   = prepared + ready
//   ga_stats.bytes_released = prepared  (mapped but not backed, Go's HeapReleased)
// A refusal by the OS is reported as nullptr / false; nothing here aborts.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace goalloc::sys {

struct Stats {
    std::atomic<std::uint64_t> reserved{0};  // Reserved, Prepared and Ready heap bytes
    std::atomic<std::uint64_t> prepared{0};  // Prepared heap bytes
    std::atomic<std::uint64_t> ready{0};     // Ready heap bytes
    std::atomic<std::uint64_t> metadata{0};  // bytes from alloc() (always Ready)
};
extern Stats stats;

// None -> Reserved. `align` is a power of two >= the OS page size; `hint` may be 0.
// Returns nullptr if the OS refuses.
void* reserve(void* hint, std::size_t n, std::size_t align);
// Reserved -> Prepared.
bool map(void* v, std::size_t n);
// A reservation mapped ahead, as map() does, but still counted as Reserved:
// the heap maps a whole new arena at once, so that its growths into it
// (take_ahead) make no system call under its lock. False if the OS refuses
// (the heap then maps as it grows). No fault injection: it has a fallback.
bool map_ahead(void* v, std::size_t n);
// Count n bytes mapped ahead as Prepared (accounting only).
void take_ahead(std::size_t n);
// Prepared -> Ready (accounting only on Linux: the kernel backs pages on touch).
void used(void* v, std::size_t n);
// Fault in the pages of [v, v+n) now (mapped memory about to be used), in one
// call instead of one fault per page; best effort (no-op where unsupported).
void populate(void* v, std::size_t n);
// Ask for transparent huge pages for the whole huge pages inside [v, v+n)
// (madvise(MADV_HUGEPAGE), as Go 1.19's sysHugePage); best effort: the
// system's THP setting decides ("never" ignores it).
void hugepage(void* v, std::size_t n);
// Back the whole huge pages inside [v, v+n) with huge pages now, copying the
// 4 KiB pages they hold (madvise(MADV_COLLAPSE), Linux 6.1+); best effort.
// Synchronous and slow (0.7-3.9 ms a 2 MiB page here, bench/results/random_access.md): a thread that may
// block calls it; it works a huge page at a time. Nothing when the system's
// THP setting is "never". False when it cannot be done here at all ("never",
// or a kernel without MADV_COLLAPSE), so a caller going a page at a time stops.
bool collapse(void* v, std::size_t n);
// Whether the system's THP setting is "never" (or the kernel has no THP).
bool thp_disabled();
// Ready -> Prepared: the physical pages go back to the OS and read as zero later.
void unused(void* v, std::size_t n);
// Any heap state -> None. `prepared` and `ready` say how much of [v, v+n) was in each state.
void free(void* v, std::size_t n, std::size_t prepared, std::size_t ready);

// None -> Ready for metadata (zeroed). nullptr if the OS refuses.
void* alloc(std::size_t n);
// alloc, aligned to 2 MiB and asking for transparent huge pages (n a multiple
// of 2 MiB): metadata that the collector reads at random on a large heap.
// Not faulted in: the caller populates it (populate) before it is used.
void* alloc_huge(std::size_t n);
void free_metadata(void* v, std::size_t n);

// For tests: make the next `count` OS requests fail (fault injection).
void inject_failures(int count);

}  // namespace goalloc::sys
