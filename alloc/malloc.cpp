// malloc.cpp — the allocator's slow paths and the ga_* API.
//
// The fast paths are inline in malloc_impl.h. Here: refill on a thread's
// first allocation, large objects, remote frees, misuse reports, calloc,
// realloc, aligned allocation and statistics.
//
// Remote free protocol (lock-free for the common case; see mcentral.h):
//   1. allocBits bit must be set, else double free;
//   2. old = remoteCount.fetch_add(1);
//   3. if this is the first pending remote free (old == 0), or, for a span no
//      thread owns, may be the last object (old + 1 >= allocCount), take the
//      mcentral lock *before* publishing, so the span can neither be given
//      back to the heap nor change owner under us;
//   4. remoteBits[w].fetch_or(bit) — a bit already set is a double free;
//   5. under the lock: push an owned span on its owner's notify stack; move an
//      unowned span to partial, or give it back.
// After step 4 without the lock, the freeing thread never touches the span again.
#include <cerrno>
#include <cstring>

#include "goalloc/goalloc.h"
#include "malloc_impl.h"
#include "options.h"
#include "sys.h"

namespace goalloc {


void* alloc_small_slow(int sc) {
    MCache* c = tls_mcache;
    if (!has_mcache(c)) {
        c = mcache_create();
        if (c == nullptr) {
            errno = ENOMEM;
            return nullptr;
        }
    }
    MCacheEntry* e = &c->alloc[sc];
    if (e->cache == 0 && !c->refill(sc)) {
        errno = ENOMEM;
        return nullptr;
    }
    std::uint64_t m = e->cache;
    unsigned bit = static_cast<unsigned>(__builtin_ctzll(m));
    m &= m - 1;
    e->cache = m;
    e->bitsWord->store(~m, std::memory_order_relaxed);
    e->nmalloc++;
    return reinterpret_cast<void*>(e->wordBase + bit * e->elemsize);
}

void* alloc_large(std::size_t n, std::size_t align, bool zero) {
    if (n > kMaxAlloc) {
        errno = ENOMEM;
        return nullptr;
    }
    heap_init();
    std::size_t npages = (n + kPageSize - 1) / kPageSize;
    if (npages == 0) npages = 1;
    MSpan* s = mheap.alloc_span(npages, 0, SpanKind::Malloc, align);
    if (s == nullptr) {
        errno = ENOMEM;
        return nullptr;
    }
    mheap.maybe_pay_scavenge_owed();
    mheap.large_allocs.fetch_add(1, std::memory_order_relaxed);
    mheap.large_bytes.fetch_add(s->elemsize, std::memory_order_relaxed);
    void* p = reinterpret_cast<void*>(s->base);
    if (zero && s->needzero) std::memset(p, 0, s->elemsize);
    return p;
}

// The span of an object the caller claims is allocated; aborts on misuse.
static MSpan* checked_span(const char* fn, std::uintptr_t a, std::uint32_t* idx_out) {
    MSpan* s = span_of(a);
    if (s == nullptr || s->state.load(std::memory_order_acquire) != SpanState::InUse) {
        if (arena_of(a) != nullptr)
            misuse_invalid(fn, a, "no allocated object here: already freed, or never allocated");
        misuse_invalid(fn, a, "not allocated by goalloc");
    }
    if (s->kind != SpanKind::Malloc) misuse_invalid(fn, a, "object belongs to the garbage-collected heap");
    std::uint32_t idx = s->index_of(a);
    if (idx >= s->nelems) misuse_invalid(fn, a, "in the unused tail of a span");
    if (s->object_base(idx) != a) misuse_interior(fn, a, s->object_base(idx));
    *idx_out = idx;
    return s;
}

static GA_NOINLINE void free_large(const char* fn, std::uintptr_t a, MSpan* s) {
    mheap.lock.lock();
    if (s->state.load(std::memory_order_relaxed) != SpanState::InUse || s->base != a) {
        mheap.lock.unlock();
        misuse_double_free(fn, a, nullptr);
    }
    mheap.large_frees.fetch_add(1, std::memory_order_relaxed);
    mheap.large_bytes.fetch_sub(s->elemsize, std::memory_order_relaxed);
    mheap.free_large_locked(s);
    mheap.lock.unlock();
}

static GA_NOINLINE void remote_free(const char* fn, std::uintptr_t a, MSpan* s, std::uint32_t idx, MCache* c) {
    std::uint32_t w = idx >> 6;
    std::uint64_t bit = std::uint64_t{1} << (idx & 63);
    if (!(s->allocBits[w].load(std::memory_order_acquire) & bit)) misuse_double_free(fn, a, s);
    int sc = s->sizeclass;
    std::uint32_t old = s->remoteCount.fetch_add(1, std::memory_order_seq_cst);
    MCentral& central = mheap.central[sc];
    MCache* owner = s->owner.load(std::memory_order_seq_cst);
    // Lock before publishing when this free must tell someone: the owner (first
    // pending free: it may not be looking at this span), or, for an unowned
    // span, the mcentral (first pending free: move it to partial; possibly the
    // last object: give it back).
    bool notify = owner != nullptr ? old == 0
                                   : (old == 0 || old + 1 >= s->allocCount.load(std::memory_order_relaxed));
    if (notify) central.lock.lock();
    std::uint64_t prev = s->remoteBits[w].fetch_or(bit, std::memory_order_acq_rel);
    if (prev & bit) {
        if (notify) central.lock.unlock();
        misuse_double_free(fn, a, s);
    }
    if (notify) {
        owner = s->owner.load(std::memory_order_seq_cst);  // stable under the lock
        if (owner == nullptr)
            central.remote_free_locked(s);
        else if (s->notified.exchange(1, std::memory_order_acq_rel) == 0)
            owner->notify_locked(s);
        central.lock.unlock();
    }
    if (has_mcache(c))
        c->alloc[sc].nfree++;
    else
        mheap.nfree[sc].fetch_add(1, std::memory_order_relaxed);
}

void free_slow(const char* fn, std::uintptr_t a) {
    std::uint32_t idx;
    MSpan* s = checked_span(fn, a, &idx);
    if (s->sizeclass == 0) {
        free_large(fn, a, s);
        return;
    }
    MCache* c = tls_mcache;
    if (c->alloc[s->sizeclass].span == s) {
        // The fast path declined an object of a span we hold: it is not allocated.
        misuse_double_free(fn, a, s);
    }
    if (s->owner.load(std::memory_order_relaxed) == c)
        c->owned_free(fn, a, s, idx);
    else
        remote_free(fn, a, s, idx, c);
}

void free_other(const char* fn, std::uintptr_t a, MSpan* s) {
    // The checks of checked_span, without looking the span up again; any
    // doubt goes to free_slow, which reports precisely.
    if (GA_UNLIKELY(s->state.load(std::memory_order_acquire) != SpanState::InUse || s->kind != SpanKind::Malloc)) {
        free_slow(fn, a);
        return;
    }
    std::uintptr_t off = a - s->base;
    if (s->sizeclass == 0) {
        if (GA_UNLIKELY(off != 0)) misuse_interior(fn, a, s->base);
        free_large(fn, a, s);
        return;
    }
    std::uint32_t idx = s->index_of(a);
    if (GA_UNLIKELY(idx >= s->nelems || idx * s->elemsize != off)) {
        free_slow(fn, a);
        return;
    }
    MCache* c = tls_mcache;
    MCache* owner = s->owner.load(std::memory_order_relaxed);
    if (owner == c) {
        c->owned_free(fn, a, s, idx);  // a span this thread owns: no atomics
        return;
    }
    // A span nobody owns (its thread exited, or gave it back): the freeing
    // thread adopts it, once, under the mcentral lock — its later frees into it
    // are then plain stores, and it allocates from it. (Checked first, so a
    // double free is reported, not adopted.)
    if (owner == nullptr && has_mcache(c) && s->is_allocated(idx) &&
        mheap.central[s->sizeclass].adopt(s, c)) {
        c->adopt(s);
        c->owned_free(fn, a, s, idx);
        return;
    }
    remote_free(fn, a, s, idx, c);
}

std::size_t usable_impl(const char* fn, const void* p) {
    std::uint32_t idx;
    MSpan* s = checked_span(fn, reinterpret_cast<std::uintptr_t>(p), &idx);
    if (!s->is_allocated(idx)) misuse_invalid(fn, reinterpret_cast<std::uintptr_t>(p),
                                              "object is not allocated: freed already?");
    return s->elemsize;
}

void* calloc_impl(std::size_t n, std::size_t size) {
    std::size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    if (total > kMaxSmallSize) return alloc_large(total, kPageSize, true);
    void* p = malloc_any(total);
    if (p != nullptr) std::memset(p, 0, total);
    return p;
}

void* realloc_impl(const char* fn, void* p, std::size_t n) {
    if (p == nullptr) return malloc_any(n);
    if (n == 0) {
        free_any(fn, p);
        return nullptr;
    }
    std::uint32_t idx;
    MSpan* s = checked_span(fn, reinterpret_cast<std::uintptr_t>(p), &idx);
    if (!s->is_allocated(idx))
        misuse_invalid(fn, reinterpret_cast<std::uintptr_t>(p), "object is not allocated: freed already?");
    std::size_t old = s->elemsize;
    // Like jemalloc, the result always has the usable size malloc(n) would
    // give: a small object stays put only if n maps to its size class; a large
    // one is trimmed or extended in place when the pages allow.
    if (s->sizeclass != 0) {
        if (n <= kMaxSmallSize && size_class_of(n) == s->sizeclass) return p;
    } else if (n > kMaxSmallSize && n <= kMaxAlloc) {
        std::size_t npages = (n + kPageSize - 1) / kPageSize;
        if (mheap.resize_large(s, npages)) {
            std::size_t now = npages * kPageSize;
            if (now > old)
                mheap.large_bytes.fetch_add(now - old, std::memory_order_relaxed);
            else
                mheap.large_bytes.fetch_sub(old - now, std::memory_order_relaxed);
            return p;
        }
    }
    void* q = malloc_any(n);
    if (q == nullptr) return nullptr;  // errno = ENOMEM; p is untouched
    std::memcpy(q, p, n < old ? n : old);
    free_any(fn, p);
    return q;
}

void* aligned_impl(std::size_t align, std::size_t n) {
    if (align <= 8) return malloc_any(n);
    if (n <= kMaxSmallSize && align <= kPageSize) {
        // Span bases are page-aligned, so every object of a class whose size
        // is a multiple of align is aligned. Class 67 (32 KiB) always is.
        int sc = size_class_of(n);
        while (class_to_size[sc] % align != 0) sc++;
        return alloc_small(sc);
    }
    return alloc_large(n, align, false);
}

}  // namespace goalloc

using namespace goalloc;

extern "C" {

void* ga_malloc(size_t n) { return malloc_any(n); }

void ga_free(void* p) { free_any("ga_free", p); }

void* ga_calloc(size_t n, size_t size) { return calloc_impl(n, size); }

void* ga_realloc(void* p, size_t n) { return realloc_impl("ga_realloc", p, n); }

void* ga_aligned_alloc(size_t align, size_t n) {
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return nullptr;
    }
    return aligned_impl(align, n);
}

size_t ga_usable_size(const void* p) {
    if (p == nullptr) return 0;
    return usable_impl("ga_usable_size", p);
}

void ga_thread_flush(void) {
    if (has_mcache(tls_mcache)) tls_mcache->flush();
}

size_t ga_release_free_memory(void) {
    heap_init();
    ga_thread_flush();
    for (int sc = 1; sc < kNumSizeClasses; sc++) mheap.central[sc].release_empty();
    mheap.flush_large_cache();
    return mheap.scavenge_all();
}

void ga_stats(ga_stats_t* out) {
    std::memset(out, 0, sizeof(*out));
    MCache* c = tls_mcache;
    std::int64_t in_use = 0;
    for (int sc = 1; sc < kNumSizeClasses; sc++) {
        std::uint64_t m = mheap.nmalloc[sc].load(std::memory_order_relaxed);
        std::uint64_t f = mheap.nfree[sc].load(std::memory_order_relaxed);
        if (has_mcache(c)) {
            m += c->alloc[sc].nmalloc;
            f += c->alloc[sc].nfree;
        }
        out->mallocs += m;
        out->frees += f;
        in_use += static_cast<std::int64_t>(m - f) * class_to_size[sc];  // m < f transiently
    }
    out->bytes_in_use = in_use > 0 ? static_cast<std::uint64_t>(in_use) : 0;
    std::uint64_t la = mheap.large_allocs.load(std::memory_order_relaxed);
    std::uint64_t lf = mheap.large_frees.load(std::memory_order_relaxed);
    out->mallocs += la;
    out->frees += lf;
    out->bytes_in_use += mheap.large_bytes.load(std::memory_order_relaxed);
    out->large_objects = la - lf;
    out->live_objects = out->mallocs - out->frees;
    std::uint64_t prepared = sys::stats.prepared.load(std::memory_order_relaxed);
    out->bytes_mapped = prepared + sys::stats.ready.load(std::memory_order_relaxed);
    out->bytes_released = prepared;
    out->bytes_reserved = sys::stats.reserved.load(std::memory_order_relaxed);
    out->bytes_metadata = sys::stats.metadata.load(std::memory_order_relaxed);
    out->spans_in_use = mheap.spans_in_use.load(std::memory_order_relaxed);
    out->arenas = mheap.arenas.load(std::memory_order_relaxed);
    mheap.lock.lock();
    out->heap_pages_free = mheap.pages.free_pages();
    mheap.lock.unlock();
}

}  // extern "C"

namespace goalloc {

void print_stats() {
    ga_stats_t s;
    ga_stats(&s);
    Msg m;
    m.s("goalloc: statistics\n");
    m.s("goalloc:   live objects   ").dec(s.live_objects).s(" (").dec(s.large_objects).s(" large)\n");
    m.s("goalloc:   bytes in use   ").dec(s.bytes_in_use).s("\n");
    m.s("goalloc:   bytes mapped   ").dec(s.bytes_mapped).s(" (released ").dec(s.bytes_released).s(", reserved ")
        .dec(s.bytes_reserved).s(", metadata ").dec(s.bytes_metadata).s(")\n");
    m.write_stderr();
    Msg k;
    k.s("goalloc: stats: mallocs=").dec(s.mallocs).s(" frees=").dec(s.frees).s(" live_objects=").dec(s.live_objects)
        .s(" bytes_in_use=").dec(s.bytes_in_use).s(" bytes_mapped=").dec(s.bytes_mapped)
        .s(" bytes_released=").dec(s.bytes_released).s(" spans_in_use=").dec(s.spans_in_use)
        .s(" arenas=").dec(s.arenas).s("\n");
    k.write_stderr();
}

// GOALLOC_STATS=1: the summary at exit, like jemalloc's opt.stats_print.
__attribute__((destructor)) static void stats_at_exit() {
    if (options().stats) print_stats();
}

}  // namespace goalloc
