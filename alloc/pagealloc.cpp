// pagealloc.cpp — bitmap page heap with per-arena summaries (see pagealloc.h).
#include "pagealloc.h"

#include <cstring>

#include "internal.h"
#include "sys.h"

namespace goalloc {

std::size_t bitmap_next_set(const std::uint64_t* bits, std::size_t nbits, std::size_t from) {
    if (from >= nbits) return kNoPos;
    std::size_t w = from >> 6;
    std::uint64_t x = bits[w] & (~std::uint64_t{0} << (from & 63));
    const std::size_t nw = (nbits + 63) >> 6;
    while (x == 0) {
        if (++w >= nw) return kNoPos;
        x = bits[w];
    }
    std::size_t r = (w << 6) + static_cast<std::size_t>(__builtin_ctzll(x));
    return r < nbits ? r : kNoPos;
}

std::size_t bitmap_next_clear(const std::uint64_t* bits, std::size_t nbits, std::size_t from) {
    if (from >= nbits) return kNoPos;
    std::size_t w = from >> 6;
    std::uint64_t x = ~bits[w] & (~std::uint64_t{0} << (from & 63));
    const std::size_t nw = (nbits + 63) >> 6;
    while (x == 0) {
        if (++w >= nw) return kNoPos;
        x = ~bits[w];
    }
    std::size_t r = (w << 6) + static_cast<std::size_t>(__builtin_ctzll(x));
    return r < nbits ? r : kNoPos;
}

std::size_t bitmap_find_run(const std::uint64_t* bits, std::size_t nbits, std::size_t npages) {
    std::size_t i = 0;
    while (i < nbits) {
        i = bitmap_next_set(bits, nbits, i);
        if (i == kNoPos) return kNoPos;
        std::size_t j = bitmap_next_clear(bits, nbits, i);
        if (j == kNoPos) j = nbits;
        if (j - i >= npages) return i;
        i = j;
    }
    return kNoPos;
}

static inline std::uint64_t word_mask(std::size_t lo, std::size_t n) {  // n bits from lo, within a word
    return (n == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1)) << lo;
}

void bitmap_set(std::uint64_t* bits, std::size_t start, std::size_t n) {
    while (n > 0) {
        std::size_t lo = start & 63, k = 64 - lo < n ? 64 - lo : n;
        bits[start >> 6] |= word_mask(lo, k);
        start += k;
        n -= k;
    }
}

void bitmap_clear(std::uint64_t* bits, std::size_t start, std::size_t n) {
    while (n > 0) {
        std::size_t lo = start & 63, k = 64 - lo < n ? 64 - lo : n;
        bits[start >> 6] &= ~word_mask(lo, k);
        start += k;
        n -= k;
    }
}

std::size_t bitmap_count(const std::uint64_t* bits, std::size_t start, std::size_t n) {
    std::size_t c = 0;
    while (n > 0) {
        std::size_t lo = start & 63, k = 64 - lo < n ? 64 - lo : n;
        c += static_cast<std::size_t>(popcount64(bits[start >> 6] & word_mask(lo, k)));
        start += k;
        n -= k;
    }
    return c;
}

static std::size_t bitmap_prev_clear(const std::uint64_t* bits, std::size_t before) {
    // The highest clear bit below `before`, or kNoPos.
    if (before == 0) return kNoPos;
    std::size_t w = (before - 1) >> 6;
    std::uint64_t x = ~bits[w];
    std::size_t top = (before - 1) & 63;
    if (top != 63) x &= (std::uint64_t{2} << top) - 1;
    while (x == 0) {
        if (w == 0) return kNoPos;
        x = ~bits[--w];
    }
    return (w << 6) + 63 - static_cast<std::size_t>(__builtin_clzll(x));
}

// One pass over the words: all-free and all-used words cost one compare; a
// mixed word adds its trailing run to the current one, finds its longest inner
// run (by repeated y &= y << 1: after k-1 steps, bit i of y says bits
// i-k+1..i of x are all set), and starts a new run with its leading free pages.
PageSummary summarize(const std::uint64_t* bits) {
    constexpr std::uint64_t kAll = ~std::uint64_t{0};
    PageSummary s;
    std::size_t max = 0, max_at = 0, cur = 0, cur_at = 0;
    for (std::size_t w = 0; w < kArenaBitmapWords; w++) {
        std::uint64_t x = bits[w];
        if (x == kAll) {
            if (cur == 0) cur_at = w * 64;
            cur += 64;
            continue;
        }
        if (x == 0) {
            if (cur > max) max = cur, max_at = cur_at;
            cur = 0;
            continue;
        }
        std::size_t t = static_cast<std::size_t>(__builtin_ctzll(~x));  // run continuing from below
        if (t != 0 && cur == 0) cur_at = w * 64;
        cur += t;
        if (cur > max) max = cur, max_at = cur_at;
        std::size_t k = 0;
        std::uint64_t last = 0;
        for (std::uint64_t y = x; y != 0; y &= y << 1) {
            last = y;
            k++;
        }
        if (k > max) max = k, max_at = w * 64 + static_cast<std::size_t>(__builtin_ctzll(last)) - (k - 1);
        std::size_t l = static_cast<std::size_t>(__builtin_clzll(~x));  // run continuing upward
        cur = l;
        cur_at = w * 64 + 64 - l;
    }
    if (cur > max) max = cur, max_at = cur_at;
    std::size_t start = bitmap_next_clear(bits, kPagesPerArena, 0);
    if (start == kNoPos) start = kPagesPerArena;
    std::size_t last_used = bitmap_prev_clear(bits, kPagesPerArena);
    s.start = static_cast<std::uint32_t>(start);
    s.end = static_cast<std::uint32_t>(last_used == kNoPos ? kPagesPerArena : kPagesPerArena - 1 - last_used);
    s.max = static_cast<std::uint32_t>(max);
    s.maxAt = static_cast<std::uint32_t>(max_at);
    return s;
}

// Pages [first, first+n) of a went from free to used: adjust the summary, and
// recount only if the range cut into the longest run.
static void summary_after_alloc(HeapArena* a, std::size_t first, std::size_t n) {
    PageSummary& s = a->sum;
    if (first < s.maxAt + s.max && first + n > s.maxAt) {
        s = summarize(a->pageFree);
        return;
    }
    if (first < s.start) s.start = static_cast<std::uint32_t>(first);
    if (first + n > kPagesPerArena - s.end) s.end = static_cast<std::uint32_t>(kPagesPerArena - (first + n));
}

// Pages [first, first+n) went from used to free: the run they join may be the
// new longest, the new start run or the new end run.
static void summary_after_free(HeapArena* a, std::size_t first, std::size_t n) {
    PageSummary& s = a->sum;
    std::size_t l = bitmap_prev_clear(a->pageFree, first);
    l = l == kNoPos ? 0 : l + 1;
    std::size_t r = bitmap_next_clear(a->pageFree, kPagesPerArena, first + n);
    if (r == kNoPos) r = kPagesPerArena;
    if (r - l > s.max) {
        s.max = static_cast<std::uint32_t>(r - l);
        s.maxAt = static_cast<std::uint32_t>(l);
    }
    if (l == 0) s.start = static_cast<std::uint32_t>(r);
    if (r == kPagesPerArena) s.end = static_cast<std::uint32_t>(kPagesPerArena - l);
}

bool PageAlloc::add_arena(HeapArena* a) {
    if (n_ == cap_) {
        std::size_t ncap = cap_ ? cap_ * 2 : 512;
        auto* na = static_cast<HeapArena**>(sys::alloc(ncap * sizeof(HeapArena*)));
        if (na == nullptr) return false;
        if (n_) std::memcpy(na, arenas_, n_ * sizeof(HeapArena*));
        if (arenas_) sys::free_metadata(arenas_, cap_ * sizeof(HeapArena*));
        arenas_ = na;
        cap_ = ncap;
    }
    std::size_t pos = n_;
    while (pos > 0 && arenas_[pos - 1]->base > a->base) {
        arenas_[pos] = arenas_[pos - 1];
        pos--;
    }
    arenas_[pos] = a;
    n_++;
    a->sum = summarize(a->pageFree);
    recompute_hint();
    return true;
}

void PageAlloc::recompute_hint() {
    hint_ = 0;
    while (hint_ < n_ && arenas_[hint_]->sum.max == 0) hint_++;
}

std::size_t PageAlloc::find_arena(std::uintptr_t addr) const {
    std::size_t lo = 0, hi = n_;
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (arenas_[mid]->base + kArenaBytes <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    GA_CHECK(lo < n_ && arenas_[lo]->base <= addr);
    return lo;
}

template <class F>
void PageAlloc::for_each_piece(std::uintptr_t base, std::size_t npages, F fn) {
    std::size_t i = find_arena(base);
    while (npages > 0) {
        GA_CHECK(i < n_);
        HeapArena* a = arenas_[i];
        GA_CHECK(base >= a->base && base < a->base + kArenaBytes);
        std::size_t first = (base - a->base) >> kPageShift;
        std::size_t n = kPagesPerArena - first < npages ? kPagesPerArena - first : npages;
        fn(a, first, n);
        base += n * kPageSize;
        npages -= n;
        i++;
    }
}

void PageAlloc::grow(std::uintptr_t base, std::size_t npages) {
    for_each_piece(base, npages, [&](HeapArena* a, std::size_t first, std::size_t n) {
        GA_CHECK(bitmap_count(a->pageFree, first, n) == 0);
        bitmap_set(a->pageFree, first, n);
        bitmap_set(a->pageScav, first, n);
        if (first + n > a->mappedPages) a->mappedPages = static_cast<std::uint32_t>(first + n);
        a->sum = summarize(a->pageFree);
    });
    free_pages_ += npages;
    scav_pages_ += npages;
    recompute_hint();
}

std::uintptr_t PageAlloc::alloc(std::size_t npages, std::size_t* scav, bool* needzero) {
    if (npages == 0) return 0;
    std::size_t carry = 0;       // free pages running up to the end of the previous arena
    std::uintptr_t carry_start = 0;
    std::uintptr_t prev_end = 0;
    std::uintptr_t found = 0;
    for (std::size_t i = hint_; i < n_ && found == 0; i++) {
        HeapArena* a = arenas_[i];
        if (carry != 0 && a->base != prev_end) carry = 0;
        if (carry != 0 && carry + a->sum.start >= npages) {
            found = carry_start;
        } else if (a->sum.max >= npages) {
            std::size_t pg = bitmap_find_run(a->pageFree, kPagesPerArena, npages);
            GA_CHECK(pg != kNoPos);
            found = a->base + pg * kPageSize;
        } else if (a->sum.start == kPagesPerArena) {
            if (carry == 0) carry_start = a->base;
            carry += kPagesPerArena;
        } else {
            carry = a->sum.end;
            carry_start = a->base + (kPagesPerArena - a->sum.end) * kPageSize;
        }
        prev_end = a->base + kArenaBytes;
    }
    if (found == 0) return 0;
    take(found, npages, scav, needzero);
    return found;
}

bool PageAlloc::contains(std::uintptr_t addr) const {
    if (n_ == 0 || addr < arenas_[0]->base) return false;
    std::size_t lo = 0, hi = n_;
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (arenas_[mid]->base + kArenaBytes <= addr) lo = mid + 1; else hi = mid;
    }
    return lo < n_ && arenas_[lo]->base <= addr;
}

bool PageAlloc::alloc_at(std::uintptr_t base, std::size_t npages, std::size_t* scav, bool* needzero) {
    // Every arena the range touches must be ours, and every page free.
    for (std::uintptr_t p = base; p < base + npages * kPageSize;) {
        if (!contains(p)) return false;
        const HeapArena* a = arenas_[find_arena(p)];
        std::size_t first = (p - a->base) >> kPageShift;
        std::size_t left = npages - (p - base) / kPageSize;
        std::size_t n = kPagesPerArena - first < left ? kPagesPerArena - first : left;
        if (bitmap_count(a->pageFree, first, n) != n) return false;
        p += n * kPageSize;
    }
    take(base, npages, scav, needzero);
    return true;
}

void PageAlloc::take(std::uintptr_t found, std::size_t npages, std::size_t* scav, bool* needzero) {
    std::size_t nscav = 0;
    bool dirty = false;
    for_each_piece(found, npages, [&](HeapArena* a, std::size_t first, std::size_t n) {
        std::size_t s = bitmap_count(a->pageScav, first, n);
        GA_ASSERT(bitmap_count(a->pageFree, first, n) == n);
        bitmap_clear(a->pageFree, first, n);
        bitmap_clear(a->pageScav, first, n);
        nscav += s;
        if (s != n) dirty = true;
        summary_after_alloc(a, first, n);
    });
    free_pages_ -= npages;
    scav_pages_ -= nscav;
    *scav = nscav;
    *needzero = dirty;
    while (hint_ < n_ && arenas_[hint_]->sum.max == 0) hint_++;
}

void PageAlloc::free(std::uintptr_t base, std::size_t npages) {
    std::size_t first_arena = find_arena(base);
    for_each_piece(base, npages, [&](HeapArena* a, std::size_t first, std::size_t n) {
        GA_ASSERT(bitmap_count(a->pageFree, first, n) == 0);
        bitmap_set(a->pageFree, first, n);
        summary_after_free(a, first, n);
    });
    free_pages_ += npages;
    if (first_arena < hint_) hint_ = first_arena;
}

std::uintptr_t PageAlloc::take_ready_high(std::size_t max_pages, std::size_t align, std::size_t* npages) {
    *npages = 0;
    if (max_pages == 0 || max_pages < align) return 0;
    for (std::size_t i = n_; i-- > 0;) {
        HeapArena* a = arenas_[i];
        if (a->sum.max < align) continue;  // no free page, or no free run long enough
        auto ready_free = [a](std::size_t w) { return a->pageFree[w] & ~a->pageScav[w]; };
        std::size_t first = kNoPos, n = 0;
        if (align <= 1) {
            for (std::size_t w = kArenaBitmapWords; w-- > 0 && first == kNoPos;) {
                std::uint64_t rf = ready_free(w);
                if (rf == 0) continue;
                std::size_t end = w * 64 + 64 - static_cast<std::size_t>(__builtin_clzll(rf));  // past the highest
                std::size_t pg = end - 1;
                while (pg > 0 && end - pg < max_pages && ((ready_free((pg - 1) >> 6) >> ((pg - 1) & 63)) & 1)) pg--;
                first = pg;
                n = end - pg;
            }
        } else {
            GA_CHECK(align % 64 == 0 && kPagesPerArena % align == 0);
            const std::size_t bw = align / 64;
            for (std::size_t b = kPagesPerArena / align; b-- > 0 && first == kNoPos;) {
                bool whole = true;
                for (std::size_t w = b * bw; w < (b + 1) * bw && whole; w++) whole = ready_free(w) == ~std::uint64_t{0};
                if (whole) {
                    first = b * align;
                    n = align;
                }
            }
        }
        if (first == kNoPos) continue;
        std::uintptr_t base = a->base + first * kPageSize;
        std::size_t scav = 0;
        bool needzero = false;
        take(base, n, &scav, &needzero);
        GA_ASSERT(scav == 0);
        *npages = n;
        return base;
    }
    return 0;
}

void PageAlloc::free_released(std::uintptr_t base, std::size_t npages) {
    free(base, npages);
    for_each_piece(base, npages, [](HeapArena* a, std::size_t first, std::size_t n) {
        GA_ASSERT(bitmap_count(a->pageScav, first, n) == 0);
        bitmap_set(a->pageScav, first, n);
    });
    scav_pages_ += npages;
}

void PageAlloc::validate() const {
    std::size_t nfree = 0, nscav = 0;
    for (std::size_t i = 0; i < n_; i++) {
        const HeapArena* a = arenas_[i];
        if (i > 0 && arenas_[i - 1]->base >= a->base) throw_fatal("pagealloc: arenas not sorted");
        PageSummary s = summarize(a->pageFree);
        if (s.start != a->sum.start || s.end != a->sum.end || s.max != a->sum.max)
            throw_fatal("pagealloc: stale arena summary");
        if (a->sum.max != 0 && bitmap_count(a->pageFree, a->sum.maxAt, a->sum.max) != a->sum.max)
            throw_fatal("pagealloc: summary's longest run is not free");
        if (i < hint_ && s.max != 0) throw_fatal("pagealloc: free page below the search hint");
        if (a->mappedPages < kPagesPerArena &&
            bitmap_count(a->pageFree, a->mappedPages, kPagesPerArena - a->mappedPages) != 0)
            throw_fatal("pagealloc: free page beyond the mapped part of an arena");
        for (std::size_t w = 0; w < kArenaBitmapWords; w++) {
            nfree += static_cast<std::size_t>(popcount64(a->pageFree[w]));
            nscav += static_cast<std::size_t>(popcount64(a->pageFree[w] & a->pageScav[w]));
        }
    }
    if (nfree != free_pages_) throw_fatal("pagealloc: free page count mismatch");
    if (nscav != scav_pages_) throw_fatal("pagealloc: scavenged page count mismatch");
}

}  // namespace goalloc
