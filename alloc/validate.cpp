// validate.cpp — the debug heap walk (ga_heap_validate).
//
// Checks, at a quiet point, every invariant the tiers document:
//   mcentral: listed spans are in use, unowned, of the list's class, tagged
//             with the list they are in; list counts match.
//   pages:    summaries, free/scavenged counts, nothing free beyond the mapped
//             part (PageAlloc::validate).
//   states:   Prepared bytes are the free Prepared pages, Ready + Prepared is
//             what is mapped (MHeap::check_states_locked; the scavenger's run
//             in flight allowed for).
//   spans:    every page of an in-use span maps to it and is not free; every
//             free page maps to nothing; a span's page count matches its class;
//             allocBits tail bits are set; remoteBits is a subset of allocBits;
//             an unowned span's allocCount equals its allocBits population.
//   totals:   spans found == spans_in_use; returns live objects
//             (allocated minus pending remote frees).
#include "goalloc/goalloc.h"
#include "mheap.h"

namespace goalloc {
namespace {

[[noreturn]] void broken(const char* what, const MSpan* s, std::uintptr_t addr) {
    Msg m;
    m.s("goalloc: heap validation failed: ").s(what);
    if (s != nullptr) m.s(" (span ").hex(s->base).s(", class ").dec(s->sizeclass).s(", pages ").dec(s->npages).s(")");
    m.s(" at ").hex(addr).s("\n");
    m.fatal();
}

void check_lists(MCentral& c) {
    LockGuard g(c.lock);
    const SpanList* lists[2] = {&c.partial, &c.full};
    const std::uint8_t ids[2] = {kListPartial, kListFull};
    for (int l = 0; l < 2; l++) {
        std::size_t n = 0;
        for (MSpan* s = lists[l]->head; s != nullptr; s = s->next, n++) {
            if (s->state.load(std::memory_order_relaxed) != SpanState::InUse) broken("dead span in mcentral", s, s->base);
            if (s->owner.load(std::memory_order_relaxed) != nullptr) broken("owned span in an mcentral list", s, s->base);
            if (s->sizeclass != c.sizeclass) broken("span in the wrong mcentral", s, s->base);
            if (s->list != ids[l]) broken("span list tag disagrees with its list", s, s->base);
            if (s->allocCount.load(std::memory_order_relaxed) != s->count_alloc())
                broken("allocCount of an unowned span differs from its allocBits", s, s->base);
            if (l == 1 && s->allocCount.load(std::memory_order_relaxed) != s->nelems &&
                s->remoteCount.load(std::memory_order_relaxed) == 0)
                broken("span with free objects in the full list", s, s->base);
        }
        if (n != lists[l]->count) broken("mcentral list count mismatch", nullptr, 0);
    }
}

std::uint64_t check_span(const MSpan* s) {
    if (s->sizeclass == 0) {
        // A collected object that may hold pointers keeps its heap bits in
        // the span's tail (gc/heap.cpp, alloc_large): the object is the rest.
        const std::uintptr_t end = s->base + std::uintptr_t{s->npages} * kPageSize;
        const auto bits = reinterpret_cast<std::uintptr_t>(s->heapBits);
        const std::uintptr_t reserve = bits == 0 ? 0 : end - bits;
        if (s->nelems != 1 || (bits != 0 && (bits < s->base || bits >= end)) || s->elemsize + reserve != end - s->base)
            broken("large span geometry", s, s->base);
        if (!s->is_allocated(0)) broken("large span whose object is not allocated", s, s->base);
        return 1;
    }
    if (s->npages != class_to_allocnpages[s->sizeclass] || s->elemsize != class_to_size[s->sizeclass])
        broken("span geometry disagrees with its size class", s, s->base);
    std::uint32_t remote = 0;
    for (std::uint32_t w = 0; w < s->nwords; w++) {
        std::uint64_t a = s->allocBits[w].load(std::memory_order_relaxed);
        std::uint64_t r = s->remoteBits[w].load(std::memory_order_relaxed);
        if ((a & s->tail_mask(w)) != s->tail_mask(w)) broken("allocBits tail bits cleared", s, s->base);
        if (r & ~a) broken("remote free of an object that is not allocated", s, s->base);
        if (r & s->tail_mask(w)) broken("remote free bit beyond nelems", s, s->base);
        remote += static_cast<std::uint32_t>(popcount64(r));
    }
    return s->count_alloc() - remote;
}

}  // namespace
}  // namespace goalloc

using namespace goalloc;

extern "C" uint64_t ga_heap_validate(void) {
    heap_init();
    for (int c = 1; c < kNumSizeClasses; c++) check_lists(mheap.central[c]);
    LockGuard g(mheap.lock);
    mheap.pages.validate();
    mheap.check_states_locked();
    std::uint64_t live = 0, spans = 0, cached_pages = 0;
    const MSpan* cur = nullptr;  // span covering the previous page
    std::uintptr_t cur_end = 0;
    for (std::size_t i = 0; i < mheap.pages.narenas(); i++) {
        const HeapArena* a = mheap.pages.arena(i);
        if (arena_of(a->base) != a) broken("arena missing from the arena index", nullptr, a->base);
        for (std::size_t pg = 0; pg < kPagesPerArena; pg++) {
            std::uintptr_t addr = a->base + pg * kPageSize;
            const MSpan* s = a->spans[pg].load(std::memory_order_relaxed);
            bool isfree = (a->pageFree[pg >> 6] >> (pg & 63)) & 1;
            if (cur != nullptr && addr < cur_end) {
                if (s != cur) broken("page of a span maps to another span", cur, addr);
                if (isfree) broken("page of an in-use span is marked free", cur, addr);
                continue;
            }
            cur = nullptr;
            if (s == nullptr) continue;  // free, or not yet mapped
            if (isfree) broken("free page maps to a span", s, addr);
            if (s->base != addr) broken("span does not start at its first page", s, addr);
            SpanState st = s->state.load(std::memory_order_relaxed);
            cur = s;
            cur_end = s->base + std::uintptr_t{s->npages} * kPageSize;
            if (st == SpanState::LargeCached) {
                if (s->sizeclass != 0) broken("small span in the large cache", s, addr);
                cached_pages += s->npages;
                continue;
            }
            if (st != SpanState::InUse) broken("dead span in the arena map", s, addr);
            spans++;
            live += check_span(s);
        }
    }
    if (cached_pages * kPageSize != mheap.large_cache_bytes)
        broken("large cache size disagrees with the cached spans found", nullptr, cached_pages);
    if (spans != mheap.spans_in_use.load(std::memory_order_relaxed))
        broken("spans_in_use disagrees with the spans found", nullptr, spans);
    return live;
}
