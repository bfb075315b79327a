// malloc_impl.h — the allocation and free fast paths, shared by the ga_* API
// (malloc.cpp) and the drop-in libc/C++ surface (override.cpp), so both compile
// to the same straight-line code with no extra call.
//
// Fast paths:
//   malloc(n <= 1 KiB): size_to_class8 lookup, TLS load, take the lowest set
//     bit of the entry's cache word, publish ~cache to allocBits, return
//     wordBase + bit * elemsize.
//   free(p) of an object in a span this thread caches: arena index -> span,
//     magic-division index, boundary check, double-free check, then set the
//     bit back (same word) or clear the allocBit (other word of the span).
// Everything else is out of line in malloc.cpp. `fn` names the entry point in
// misuse reports ("free", "ga_free", "operator delete", ...).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mcache.h"
#include "mheap.h"

namespace goalloc {

// Slow paths (malloc.cpp). All set errno = ENOMEM when they return nullptr.
void* alloc_small_slow(int sc);
void* alloc_large(std::size_t n, std::size_t align, bool zero);
void free_slow(const char* fn, std::uintptr_t a);
// The object's span s is not the one this thread caches for its class.
void free_other(const char* fn, std::uintptr_t a, MSpan* s);
// Checked operations behind calloc, realloc, aligned allocation, usable size.
void* calloc_impl(std::size_t n, std::size_t size);
void* realloc_impl(const char* fn, void* p, std::size_t n);
// align must be a power of two (callers check); any size.
void* aligned_impl(std::size_t align, std::size_t n);
std::size_t usable_impl(const char* fn, const void* p);
// Summary of the statistics to stderr (GOALLOC_STATS, malloc_stats).
void print_stats();

GA_INLINE std::size_t size_class_of(std::size_t n) {
    if (n <= kSmallSizeMax) return size_to_class8[(n + kSmallSizeDiv - 1) / kSmallSizeDiv];
    return size_to_class128[(n - kSmallSizeMax + kLargeSizeDiv - 1) / kLargeSizeDiv];
}

GA_INLINE void* alloc_small(std::size_t sc) {
    MCacheEntry* e = &tls_mcache->alloc[sc];
    std::uint64_t m = e->cache;
    if (GA_LIKELY(m != 0)) {
        std::uintptr_t bit = static_cast<std::uintptr_t>(__builtin_ctzll(m));
        m &= m - 1;
        e->cache = m;
        e->bitsWord->store(~m, std::memory_order_relaxed);
        e->nmalloc++;
        return reinterpret_cast<void*>(e->wordBase + bit * e->elemsize);
    }
    return alloc_small_slow(static_cast<int>(sc));
}

GA_INLINE void* malloc_any(std::size_t n) {
    if (GA_LIKELY(n <= kSmallSizeMax)) return alloc_small(size_to_class8[(n + 7) >> 3]);
    if (n <= kMaxSmallSize) return alloc_small(size_class_of(n));
    return alloc_large(n, kPageSize, false);
}

GA_INLINE void free_any(const char* fn, void* p) {
    std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
    MSpan* s = span_of(a);
    if (GA_LIKELY(s != nullptr)) {
        MCacheEntry* e = &tls_mcache->alloc[s->sizeclass];
        if (GA_LIKELY(e->span == s)) {
            std::uintptr_t off = a - s->base;
            std::uint32_t idx = static_cast<std::uint32_t>((off * s->divMul) >> 32);
            if (GA_LIKELY(idx * e->elemsize == off && idx < s->nelems)) {
                std::uint64_t bit = std::uint64_t{1} << (idx & 63);
                std::uint32_t w = idx >> 6;
                if (w == e->word) {
                    if (GA_LIKELY(!(e->cache & bit))) {
                        e->cache |= bit;
                        e->bitsWord->store(~e->cache, std::memory_order_relaxed);
                        e->nfree++;
                        return;
                    }
                } else {
                    std::uint64_t x = s->allocBits[w].load(std::memory_order_relaxed);
                    if (GA_LIKELY(x & bit)) {
                        s->allocBits[w].store(x & ~bit, std::memory_order_relaxed);
                        e->nfree++;
                        return;
                    }
                }
            }
        } else {
            free_other(fn, a, s);  // a remote free, a large object, or misuse
            return;
        }
    }
    if (a == 0) return;
    free_slow(fn, a);
}

}  // namespace goalloc
