// heap.cpp — allocation of collected objects and sweeping (Go's mallocgc,
// mcache/mcentral for the collected heap, mgcsweep.go).
//
// Span classes: size class << 1 | noscan, 136 of them. A thread caches one
// span per class (GcThread::alloc); an entry allocates from the free bits of
// one allocBits word at a time (`cache`), and sets the object's allocBits bit
// at once, so allocBits is exact at every instant a thread can be stopped: a
// conservative scan and the sweeper both trust it. Scan spans keep their
// heap bits (one bit per word: "may hold a pointer") in the span's own last
// bytes, as Go 1.22 does; an allocation writes its object's bits from the
// type's layout (TypeInfo) before the object can be seen.
//
// Invariants:
//   * An allocation runs in a nosuspend region from taking the slot to setting
//     its mark bit (black allocation) and heap bits: a stop-the-world sees a
//     slot either free, or allocated with its bits written.
//   * Spans not in a thread cache are on exactly one list of their mcentral,
//     or popped by exactly one sweeper; sweeping a span happens in a nosuspend
//     region (mutators) or on the collector's own thread, so a stopped world
//     has no sweep in progress.
//   * heap_live counts a cached span's free slots as allocated (as Go); they
//     are taken back when the span leaves the cache.
// Locks: each GcCentral.lock (rank kRankMCentral), then mheap.lock.
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "gcinternal.h"
#include "sys.h"

namespace goalloc::gc {

__thread GcThread* tls_gc_thread __attribute__((tls_model("initial-exec"))) = nullptr;
GcState gcs;
static GcCentral central[kNumSpanClasses];
static std::uintptr_t zerobase[2];  // returned for zero-byte objects (Go's zerobase)

static inline std::uint32_t sg_now() { return gcs.sweepgen.load(std::memory_order_acquire); }

static inline int size_to_class(std::size_t n) {
    if (n <= kSmallSizeMax) return size_to_class8[(n + kSmallSizeDiv - 1) / kSmallSizeDiv];
    return size_to_class128[(n - kSmallSizeMax + kLargeSizeDiv - 1) / kLargeSizeDiv];
}

// ---- heap bits ----
static inline std::size_t heap_bits_bytes(std::size_t span_bytes) { return span_bytes / 64; }
static constexpr std::size_t kInbandHeapBitsMax = 512;

static inline void bits_write(std::atomic<std::uint64_t>* hb, std::size_t bit, std::uint64_t v, unsigned n) {
    // Write n (1..64) bits of v at bit index `bit` (owner of the span only).
    std::size_t w = bit >> 6;
    unsigned sh = static_cast<unsigned>(bit & 63);
    std::uint64_t m = n == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << n) - 1);
    std::uint64_t cur = hb[w].load(std::memory_order_relaxed);
    hb[w].store((cur & ~(m << sh)) | ((v & m) << sh), std::memory_order_relaxed);
    if (sh + n > 64) {
        unsigned done = 64 - sh;
        std::uint64_t m2 = m >> done;
        std::uint64_t cur2 = hb[w + 1].load(std::memory_order_relaxed);
        hb[w + 1].store((cur2 & ~m2) | ((v >> done) & m2), std::memory_order_relaxed);
    }
}

// Heap bits of the object at word `wo` of its span: `words` words, from the
// type's layout repeated `count` times (or all ones for conservative objects).
static void write_heap_bits(MSpan* s, std::size_t wo, std::size_t words, const TypeInfo* ti, std::size_t count) {
    // Called inside a nosuspend region: the span's memory must not be in a
    // growth still to be faulted in (populate_growth), or a stop would wait
    // for a 2 MiB page fault here. (A growth of the thread's own malloc
    // calls may be pending: it is faulted in at its next refill.)
    GA_ASSERT(tls_gc_thread == nullptr || tls_gc_thread->populate_bytes == 0 ||
              s->base + std::uintptr_t{s->npages} * kPageSize <= tls_gc_thread->populate_base ||
              s->base >= tls_gc_thread->populate_base + tls_gc_thread->populate_bytes);
    std::atomic<std::uint64_t>* hb = s->heapBits;
    if (ti->kind == detail::kLayoutPrecise && ti->words <= 64) {
        std::uint64_t m = ti->mask[0];
        std::size_t tw = ti->words;
        std::size_t w = 0;
        for (std::size_t e = 0; e < count; e++, w += tw) bits_write(hb, wo + w, m, static_cast<unsigned>(tw));
        for (; w < words; w += 64) bits_write(hb, wo + w, 0, static_cast<unsigned>(words - w < 64 ? words - w : 64));
        return;
    }
    if (ti->kind == detail::kLayoutPrecise) {
        std::size_t tw = ti->words, w = 0;
        for (std::size_t e = 0; e < count; e++)
            for (std::size_t i = 0; i < tw; i += 64, w += 0) {
                unsigned n = static_cast<unsigned>(tw - i < 64 ? tw - i : 64);
                bits_write(hb, wo + e * tw + i, ti->mask[i / 64], n);
            }
        w = count * tw;
        for (; w < words; w += 64) bits_write(hb, wo + w, 0, static_cast<unsigned>(words - w < 64 ? words - w : 64));
        return;
    }
    // Conservative (or unknown: the first object of a type, scanned whole).
    for (std::size_t w = 0; w < words; w += 64)
        bits_write(hb, wo + w, ~std::uint64_t{0}, static_cast<unsigned>(words - w < 64 ? words - w : 64));
}

// Uniform spans: a scan span of small objects (<= 512 bytes) whose objects
// all have one precise type records that type (MSpan::uniform) and writes no
// heap bits; the markers use the type's mask. The first object of another
// type (or an array, or a conservative object) materialises the bits of every
// allocated object from the mask and turns the span mixed for good (nullptr).
// A marker that read the old uniform type can only misread objects allocated
// after that moment, which are allocated black (their fields hold only
// pointers the snapshot covers), so the switch needs no stop.
static GA_NOINLINE void type_switch(MSpan* s, std::uintptr_t p, const TypeInfo* ti, std::size_t count) {
    const void* u = s->uniform.load(std::memory_order_relaxed);
    std::size_t es = s->elemsize;
    if (u == kUniformUnset && ti->kind == detail::kLayoutPrecise && count == 1 && es <= 512) {
        std::uint64_t m = ti->mask[0];  // es <= 512: one mask word
        s->scan_dense.store(m != 0 && (m & (m + 1)) == 0 ? static_cast<std::uint8_t>(popcount64(m)) : 0,
                            std::memory_order_relaxed);
        s->uniform.store(ti, std::memory_order_release);
        return;
    }
    if (u != nullptr && u != kUniformUnset) {
        auto* old = static_cast<const TypeInfo*>(u);
        for (std::uint32_t w = 0; w < s->nwords; w++) {
            std::uint64_t a = s->allocBits[w].load(std::memory_order_relaxed) & ~s->tail_mask(w);
            for (; a != 0; a &= a - 1) {
                std::uintptr_t o = s->object_base(w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(a)));
                bits_write(s->heapBits, (o - s->base) >> 3, old->mask[0], static_cast<unsigned>(es >> 3));
            }
        }
    }
    s->uniform.store(nullptr, std::memory_order_release);
    write_heap_bits(s, (p - s->base) >> 3, es >> 3, ti, count);
}

static void reclaim(std::size_t npages);
// At most this many spans swept by one reclaim (see there). With 64,
// binary_trees' reclaims gave up in a third of the calls: a run of live spans
// (its long-lived tree) came first in the list, and the heap grew beside
// megabytes of unswept garbage.
static constexpr std::size_t kReclaimSpans = 1024;

// ---- mcentral lists (singly linked stacks through MSpan::next) ----
static inline void push(MSpan** head, MSpan* s) {
    s->next = *head;
    *head = s;
}
static inline MSpan* pop(MSpan** head) {
    MSpan* s = *head;
    if (s != nullptr) {
        *head = s->next;
        s->next = nullptr;
    }
    return s;
}

static inline bool span_has_free(const MSpan* s) {
    for (std::uint32_t w = 0; w < s->nwords; w++)
        if (~s->allocBits[w].load(std::memory_order_relaxed) != 0) return true;
    return false;
}

// Put a swept span (sweepgen == sg) back on its mcentral's swept lists.
static void put_swept(MSpan* s, std::uint32_t sg) {
    GcCentral& c = central[s->spanclass];
    LockGuard g(c.lock);
    int i = (sg >> 1) & 1;
    if (s->sizeclass != 0 && span_has_free(s))
        push(&c.partial[i], s);
    else
        push(&c.full[i], s);
}

static void poison_object(std::uintptr_t p, std::size_t n) { fill_program_memory(p, n, 0xdb); }

// Sweep s (popped from an unswept list; sweepgen == sg-2). Returns false if
// the span was freed to the heap, true if it survives (sweepgen == sg).
static bool sweep_span(MSpan* s, std::uint32_t sg) {
    GA_ASSERT(s->sweepgen.load(std::memory_order_relaxed) == sg - 2);
    gcs.unswept.fetch_sub(1, std::memory_order_relaxed);
    s->sweepgen.store(sg - 1, std::memory_order_seq_cst);  // before the bitmaps change (base_of)
    if (s->specials.load(std::memory_order_relaxed) != 0) finalizers_sweep_span(s);
    std::uint32_t nw = s->nwords;
    std::uint64_t freed = 0, marked = 0;
    bool poison = debug_poison() != 0;
    for (std::uint32_t w = 0; w < nw; w++) {
        std::uint64_t tail = s->tail_mask(w);
        std::uint64_t a = s->allocBits[w].load(std::memory_order_relaxed) & ~tail;
        std::uint64_t m = s->gcmarkBits[w].load(std::memory_order_relaxed) & ~tail;
        GA_ASSERT((m & ~a) == 0);
        std::uint64_t f = a & ~m;
        freed += popcount64(f);
        marked += popcount64(m);
        if (poison)
            for (std::uint64_t x = f; x != 0; x &= x - 1)
                poison_object(s->object_base(w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(x))),
                              s->elemsize);
    }
    if (freed != 0) {
        gcs.nfree.fetch_add(freed, std::memory_order_relaxed);
        gcs.freed_bytes.fetch_add(freed * s->elemsize, std::memory_order_relaxed);
    }
    if (marked == 0) {
        gcs.inuse_bytes.fetch_sub(std::uint64_t{s->npages} * kPageSize, std::memory_order_relaxed);
        if (s->gcflags & kSpanOobHeapBits) ga_free(s->heapBits);
        gcs.nspans.fetch_sub(1, std::memory_order_relaxed);
        mheap.free_span(s);
        return false;
    }
    // (Atomic pointer stores: base_of may read them during the sweep; it
    // retries when the sweepgen says a sweep overlapped.)
    std::atomic<std::uint64_t>* t = s->allocBits;
    __atomic_store_n(&s->allocBits, s->gcmarkBits, __ATOMIC_RELEASE);
    __atomic_store_n(&s->gcmarkBits, t, __ATOMIC_RELEASE);
    for (std::uint32_t w = 0; w < nw; w++) s->gcmarkBits[w].store(s->tail_mask(w), std::memory_order_relaxed);
    s->allocCount.store(static_cast<std::uint32_t>(marked), std::memory_order_relaxed);
    s->needzero = true;
    s->sweepgen.store(sg, std::memory_order_release);
    return true;
}

// A span to allocate from for span class spc: swept partial, else sweep
// unswept ones (Go's mcentral.cacheSpan), else a new span. Caller: nosuspend.
static MSpan* cache_span(int spc) {
    GcCentral& c = central[spc];
    std::uint32_t sg = sg_now();
    int sw = (sg >> 1) & 1, un = sw ^ 1;
    c.lock.lock();
    if (MSpan* s = pop(&c.partial[sw])) {
        c.lock.unlock();
        return s;
    }
    for (int tries = 0; tries < 100; tries++) {
        MSpan* s = pop(&c.partial[un]);
        bool was_full = false;
        if (s == nullptr) {
            s = pop(&c.full[un]);
            was_full = true;
        }
        if (s == nullptr) break;
        c.lock.unlock();
        bool alive = sweep_span(s, sg);
        c.lock.lock();
        if (alive) {
            if (span_has_free(s)) {
                c.lock.unlock();
                return s;
            }
            push(&c.full[sw], s);
        }
        (void)was_full;
        // (Also after a span freed to the heap: a run of dead spans — a
        // program dropping a big structure — kept a stop waiting ~300 us.)
        if (GA_UNLIKELY(stop_pending())) {
            // A stop is waiting: this thread holds no span now, so it may stop.
            c.lock.unlock();
            nosuspend_exit();
            nosuspend_enter();
            c.lock.lock();
            sg = sg_now();
            sw = (sg >> 1) & 1;
            un = sw ^ 1;
        }
    }
    c.lock.unlock();
    // Grow: a fresh span. Heap bits of small-object scan spans go in the
    // span's last bytes (Go 1.22); for objects above 512 bytes that would cost
    // an object per span, so their bits are allocated out of band.
    int sc = spc >> 1;
    bool noscan = spc & 1;
    std::size_t npages = class_to_allocnpages[sc];
    bool inband = !noscan && class_to_size[sc] <= kInbandHeapBitsMax;
    std::size_t bitbytes = heap_bits_bytes(npages * kPageSize);
    std::size_t reserve = inband ? bitbytes : 0;
    reclaim(npages);
    std::atomic<std::uint64_t>* oob = nullptr;
    if (!noscan && !inband) {
        oob = static_cast<std::atomic<std::uint64_t>*>(ga_calloc(bitbytes / 8, 8));
        if (oob == nullptr) return nullptr;
    }
    MSpan* s = mheap.alloc_span(npages, sc, SpanKind::Collected, kPageSize, reserve);
    if (s == nullptr) {
        ga_free(oob);
        return nullptr;
    }
    s->spanclass = static_cast<std::uint8_t>(spc);
    if (inband) {
        s->scan_dense.store(0, std::memory_order_relaxed);
        s->uniform.store(kUniformUnset, std::memory_order_relaxed);
        s->heapBits = reinterpret_cast<std::atomic<std::uint64_t>*>(s->base + npages * kPageSize - reserve);
        if (s->needzero) std::memset(reinterpret_cast<void*>(s->base + npages * kPageSize - reserve), 0, reserve);
    } else if (oob != nullptr) {
        s->heapBits = oob;
        s->gcflags |= kSpanOobHeapBits;
    }
    s->sweepgen.store(sg, std::memory_order_release);  // publishes the span to find_object
    gcs.inuse_bytes.fetch_add(npages * kPageSize, std::memory_order_relaxed);
    gcs.nspans.fetch_add(1, std::memory_order_relaxed);
    return s;
}

// Free slots of entry e's span not yet handed out (cache + later words).
static std::uint32_t entry_free(const AllocEntry* e) {
    MSpan* s = e->span;
    std::uint32_t n = popcount64(e->cache);
    for (std::uint32_t w = e->word + 1; w < s->nwords; w++)
        n += popcount64(~s->allocBits[w].load(std::memory_order_relaxed));
    return n;
}

// Black allocation, by span (instead of an atomic OR per object): a span a
// thread starts to allocate from while marking is on (or holds when marking
// starts: snapshot_for_mark) remembers which slots were free then, in
// remoteBits (unused by collected spans); when it leaves the cache, the slots
// allocated since are OR-ed into gcmarkBits. Every cache is emptied at mark
// termination, before sweeping can look at the bits. Until then shade()
// treats a slot that is allocated but was free in the snapshot as black (no
// mark bit, no queueing): otherwise every pointer to a new object that the
// write barrier records would be fresh mark work at each termination attempt,
// and a mutator storing new objects would keep mark termination from ending.
static void snapshot_free(MSpan* s) {
    for (std::uint32_t w = 0; w < s->nwords; w++)
        s->remoteBits[w].store(~s->allocBits[w].load(std::memory_order_relaxed), std::memory_order_relaxed);
    __atomic_store_n(&s->gcflags, static_cast<std::uint8_t>(s->gcflags | kSpanBlackCache), __ATOMIC_RELEASE);
}

static void blacken_new(MSpan* s) {
    std::uint64_t n = 0;
    for (std::uint32_t w = 0; w < s->nwords; w++) {
        std::uint64_t nb = s->remoteBits[w].load(std::memory_order_relaxed) &
                           s->allocBits[w].load(std::memory_order_relaxed);
        // Mark bits first, then forget the snapshot: a marker that reads
        // neither sees the object as white and scans it once more (harmless).
        if (nb != 0) {
            std::uint64_t old = s->gcmarkBits[w].fetch_or(nb, std::memory_order_relaxed);
            n += popcount64(nb & ~old);
        }
        s->remoteBits[w].store(0, std::memory_order_relaxed);
    }
    __atomic_store_n(&s->gcflags, static_cast<std::uint8_t>(s->gcflags & ~kSpanBlackCache), __ATOMIC_RELAXED);
    if (n != 0) gcs.bytes_marked.fetch_add(static_cast<std::int64_t>(n * s->elemsize), std::memory_order_relaxed);
}

// f(i) for each span class i whose cache entry of t holds a span.
template <class F>
static void for_each_used_entry(GcThread* t, F f) {
    for (int w = 0; w < (kNumSpanClasses + 63) / 64; w++)
        for (std::uint64_t m = t->alloc_used[w]; m != 0; m &= m - 1) f(w * 64 + __builtin_ctzll(m));
}

void snapshot_for_mark(GcThread* t) {
    for_each_used_entry(t, [t](int i) { snapshot_free(t->alloc[i].span); });
    t->blacken = 1;
}

static void uncache_entry(GcThread* t, AllocEntry* e) {
    MSpan* s = e->span;
    if (s == nullptr) return;
    if (s->gcflags & kSpanBlackCache) blacken_new(s);
    std::uint64_t unused = entry_free(e);
    // The unused slots were counted as allocated at refill: take them back.
    if (unused != 0) {
        std::uint64_t b = unused * s->elemsize;
        gcs.nmalloc.fetch_sub(unused, std::memory_order_relaxed);
        gcs.total_alloc.fetch_sub(b, std::memory_order_relaxed);
        gcs.heap_live.fetch_sub(b, std::memory_order_relaxed);
    }
    int spc = static_cast<int>(e - t->alloc);
    t->alloc_used[spc >> 6] &= ~(std::uint64_t{1} << (spc & 63));
    e->span = nullptr;
    e->cache = 0;
    e->word = 0;
    e->abw = nullptr;
    e->wbase = 0;
    put_swept(s, sg_now());
}

void release_thread_cache(GcThread* t) {
    for_each_used_entry(t, [t](int i) { uncache_entry(t, &t->alloc[i]); });
#if GOALLOC_DEBUG_LEVEL >= 2
    // alloc_used named every entry that held a span: all are empty now.
    for (int i = 0; i < kNumSpanClasses; i++) GA_ASSERT(t->alloc[i].span == nullptr && t->alloc[i].cache == 0);
#endif
    t->tiny = 0;
    t->tinyoffset = 0;
    merge_thread_stats(t);
}

void merge_thread_stats(GcThread* t) {
    std::uint64_t n = t->ntiny.exchange(0, std::memory_order_relaxed);
    if (n != 0) gcs.ntiny.fetch_add(n, std::memory_order_relaxed);
}

static inline void entry_set_word(AllocEntry* e, MSpan* s, std::uint32_t w, std::uint64_t c) {
    e->word = w;
    e->cache = c;
    e->abw = &s->allocBits[w];
    e->wbase = s->base + std::uintptr_t{w} * 64 * s->elemsize;
}

// Refill entry spc of t. Caller: nosuspend. Returns bytes newly counted (0 on OOM).
static std::uint64_t refill(GcThread* t, int spc) {
    AllocEntry* e = &t->alloc[spc];
    if (MSpan* s = e->span) {
        for (std::uint32_t w = e->word + 1; w < s->nwords; w++) {
            std::uint64_t c = ~s->allocBits[w].load(std::memory_order_relaxed);
            if (c != 0) {
                entry_set_word(e, s, w, c);
                return 1;
            }
        }
        e->word = s->nwords;
        uncache_entry(t, e);
    }
    MSpan* s = cache_span(spc);
    if (s == nullptr) return 0;
    if (t->blacken) snapshot_free(s);
    std::uint32_t freeslots = 0;
    e->span = s;
    t->alloc_used[spc >> 6] |= std::uint64_t{1} << (spc & 63);
    e->elemsize = static_cast<std::uint32_t>(s->elemsize);
    e->needzero = s->needzero;
    std::uint32_t first = ~0u;
    for (std::uint32_t w = 0; w < s->nwords; w++) {
        std::uint64_t c = ~s->allocBits[w].load(std::memory_order_relaxed);
        if (c != 0 && first == ~0u) {
            first = w;
            entry_set_word(e, s, w, c);
        }
        freeslots += popcount64(c);
    }
    GA_CHECK(first != ~0u);
    std::uint64_t b = std::uint64_t{freeslots} * s->elemsize;
    gcs.nmalloc.fetch_add(freeslots, std::memory_order_relaxed);
    gcs.total_alloc.fetch_add(b, std::memory_order_relaxed);
    return b;
}

[[noreturn]] static void out_of_memory(std::size_t n) {
    Msg m;
    m.s("goalloc: fatal error: out of memory allocating ").dec(n).s(" bytes (collected heap)\n");
    m.fatal();
}

// The heap grew by `bytes` on an allocating thread (outside nosuspend): the
// pacer counts them; while marking the thread pays its assist, otherwise its
// share of the sweep.
static void heap_grew(GcThread* t, std::uint64_t bytes) {
    note_heap_live_add(bytes);
    if (gcs.phase.load(std::memory_order_relaxed) == kPhaseMark) {
        fractional_mark(t);
        assist_alloc(t, bytes);
    } else {
        sweep_credit();
    }
}

// With huge pages (GOALLOC_GC_HUGEPAGES), a thread that grew the heap faults
// the new range in before it uses it (collector.cpp, on_heap_grow_self), as
// a blocking call: a first touch would fault each 2 MiB page in — zeroing it,
// up to 2.6-3.6 ms here (scripts/random_access.sh) — and a stop of the world cannot
// interrupt a fault, so it would wait; a Blocked thread is claimed instead,
// and its stack (this frame up) scanned as it is. Called outside nosuspend
// regions.
// The same step fills the mheap's next huge-page region for span records
// and bitmaps (mheap.h, metadata_region_to_fill), so that no thread faults
// one in under mheap.lock.
static void populate_fn(void* arg) {
    GcThread* t = static_cast<GcThread*>(arg);
    sys::populate(reinterpret_cast<void*>(t->populate_base), t->populate_bytes);
    if (t->populate_meta != nullptr) sys::populate(t->populate_meta, MHeap::kMetaRegionBytes);
}
static GA_NOINLINE void populate_growth(GcThread* t) {
    t->populate_meta = mheap.metadata_region_to_fill();
    blocking_call(populate_fn, t);
    t->populate_bytes = 0;
    if (void* r = t->populate_meta) {
        t->populate_meta = nullptr;
        mheap.offer_metadata_region(r);
    }
}

static GA_NOINLINE void* alloc_large(GcThread* t, std::size_t n, const TypeInfo* ti, std::size_t count) {
    bool noscan = ti->kind == detail::kLayoutNoscan;
    // Heap bits cover every word of the span (128 bytes a page), in its tail.
    std::size_t npages = (n + kPageSize - 1) / kPageSize;
    std::size_t reserve = 0;
    if (!noscan) {
        while (n + heap_bits_bytes(npages * kPageSize) > npages * kPageSize) npages++;
        reserve = heap_bits_bytes(npages * kPageSize);
    }
    nosuspend_enter();
    reclaim(npages);
    MSpan* s = mheap.alloc_span(npages, 0, SpanKind::Collected, kPageSize, reserve);
    if (s == nullptr) {
        nosuspend_exit();
        return nullptr;
    }
    if (t->populate_bytes != 0) {
        // The span is fresh memory the heap just grew by, with huge pages:
        // fault it in before the heap bits below touch its tail (a 2 MiB
        // fault, which a stop would wait for in this region). Until it is
        // published (sweepgen) the span is this thread's alone: no list,
        // no lookup and no sweep sees it, so a stop or a whole cycle may
        // pass meanwhile; sg and blacken are read after.
        nosuspend_exit();
        populate_growth(t);
        nosuspend_enter();
    }
    s->spanclass = static_cast<std::uint8_t>(noscan ? 1 : 0);
    std::uint32_t sg = sg_now();
    if (s->needzero) std::memset(reinterpret_cast<void*>(s->base), 0, npages * kPageSize);
    if (!noscan) {
        s->heapBits = reinterpret_cast<std::atomic<std::uint64_t>*>(s->base + npages * kPageSize - reserve);
        write_heap_bits(s, 0, s->elemsize / 8, ti, count);
        if (ti->kind == detail::kLayoutPrecise) s->gcflags |= kSpanPreciseLarge;
    }
    s->sweepgen.store(sg, std::memory_order_release);  // publishes the span to find_object
    if (t->blacken) {
        s->gcmarkBits[0].fetch_or(1, std::memory_order_relaxed);
        gcs.bytes_marked.fetch_add(static_cast<std::int64_t>(s->elemsize), std::memory_order_relaxed);
    }
    std::uint64_t bytes = std::uint64_t{npages} * kPageSize;
    gcs.inuse_bytes.fetch_add(bytes, std::memory_order_relaxed);
    gcs.nspans.fetch_add(1, std::memory_order_relaxed);
    gcs.nmalloc.fetch_add(1, std::memory_order_relaxed);
    gcs.total_alloc.fetch_add(s->elemsize, std::memory_order_relaxed);
    {
        GcCentral& c = central[s->spanclass];
        LockGuard g(c.lock);
        push(&c.full[(sg >> 1) & 1], s);
    }
    void* p = reinterpret_cast<void*>(s->base);
    nosuspend_exit();
    mheap.maybe_pay_scavenge_owed();  // (alloc/mheap.h: over the limit, or a growth beyond the goal)
    heap_grew(t, s->elemsize);
    return p;
}

static void* mallocgc(std::size_t n, const TypeInfo* ti, std::size_t count);

// Go's tiny allocator: several tiny noscan objects share a 16-byte block.
static GA_NOINLINE void* tiny_alloc(GcThread* t, std::size_t n) {
    nosuspend_enter();
    std::uintptr_t off = t->tinyoffset;
    if ((n & 7) == 0) off = (off + 7) & ~std::uintptr_t{7};
    else if ((n & 3) == 0) off = (off + 3) & ~std::uintptr_t{3};
    else if ((n & 1) == 0) off = (off + 1) & ~std::uintptr_t{1};
    if (t->tiny != 0 && off + n <= kTinySize) {
        void* p = reinterpret_cast<void*>(t->tiny + off);
        t->tinyoffset = off + n;
        t->ntiny.store(t->ntiny.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        nosuspend_exit();
        return p;
    }
    nosuspend_exit();
    static const TypeInfo tinyti = {detail::kLayoutNoscan, 2, nullptr};
    void* blk = mallocgc(kTinySize, &tinyti, 1);
    if (blk == nullptr) return nullptr;
    nosuspend_enter();
    // Keep whichever block has more room left (as Go).
    if (t->tiny == 0 || n < t->tinyoffset) {
        t->tiny = reinterpret_cast<std::uintptr_t>(blk);
        t->tinyoffset = n;
    }
    nosuspend_exit();
    return blk;
}

// Hand out the lowest free slot of entry e's word (c = e->cache != 0): drop it
// from the cache and set its allocBits bit. While a span is cached only its
// holder writes its allocBits, and the current word is always the complement
// of `cache` (refill takes cache = ~allocBits[word]): the word is stored, not
// read and OR-ed, so consecutive allocations do not wait on each other's
// store through memory. Callers load everything they need from e first (the
// stores could alias it).
static GA_INLINE void claim_slot(AllocEntry* e, std::atomic<std::uint64_t>* ab, std::uint64_t c) {
    GA_ASSERT(ab->load(std::memory_order_relaxed) == ~c);
    std::uint64_t rest = c & (c - 1);
    e->cache = rest;
    ab->store(~rest, std::memory_order_relaxed);
}

// Take the next free slot of entry e (cache != 0; caller: nosuspend), set its
// allocBits bit, and zero it if the span needs it and it is small (returns
// whether a larger slot still needs zeroing in *zero).
static GA_INLINE std::uintptr_t take_slot(AllocEntry* e, std::uint64_t c, bool* zero) {
    // (Every load before the first store: the stores could alias the entry.)
    std::atomic<std::uint64_t>* ab = e->abw;
    std::uintptr_t es = e->elemsize;
    std::uintptr_t wbase = e->wbase;
    bool nz = e->needzero;
    unsigned b = static_cast<unsigned>(__builtin_ctzll(c));
    claim_slot(e, ab, c);
    std::uintptr_t p = wbase + b * es;
    *zero = false;
    if (nz) {
        auto* q = reinterpret_cast<std::uint64_t*>(p);
        if (es == 16) {
            q[0] = 0;
            q[1] = 0;
        } else if (es <= 64) {
            for (std::uintptr_t o = 0; o < es / 8; o++) q[o] = 0;
        } else {
            *zero = true;
        }
    }
    return p;
}

// The allocator proper. n > 0. nullptr only when out of memory.
static GA_INLINE void* mallocgc(std::size_t n, const TypeInfo* ti, std::size_t count) {
    GcThread* t = current_thread();
    bool noscan = ti->kind == detail::kLayoutNoscan;
    if (n > kMaxSmallSize) return alloc_large(t, n, ti, count);
    if (noscan && n < kTinySize) return tiny_alloc(t, n);
    int sc = size_to_class(n);
    int spc = sc << 1 | (noscan ? 1 : 0);
    // Bytes a refill added to the heap, paced (heap_grew: assist, sweep
    // credit, a wait for a cycle to start) once the object has its slot, as
    // Go's mallocgc starts a cycle after the allocation. Paced first, the
    // wait could span a whole cycle (a stop-the-world mark, or a short one)
    // whose termination takes the cache back: the next refill was past the
    // goal again, and a thread whose span held more than the goal's
    // headroom allocated nothing, cycle after cycle (the torture test with
    // GODEBUG=gcstoptheworld=1: ~11,000 cycles a second for 15 minutes).
    std::uint64_t grew = 0;
    for (;;) {
        nosuspend_enter();
        AllocEntry* e = &t->alloc[spc];
        std::uint64_t c = e->cache;
        if (GA_LIKELY(c != 0)) {
            bool zero;
            std::uintptr_t p = take_slot(e, c, &zero);
            MSpan* s = e->span;
            std::uintptr_t es = e->elemsize;
            if (zero) std::memset(reinterpret_cast<void*>(p), 0, es);
            if (!noscan) {
                const void* u = s->uniform.load(std::memory_order_relaxed);
                if (GA_UNLIKELY(u != ti)) {
                    if (u == nullptr)
                        write_heap_bits(s, (p - s->base) >> 3, es >> 3, ti, count);
                    else
                        type_switch(s, p, ti, count);
                }
            }
            nosuspend_exit();
            if (grew != 0) heap_grew(t, grew);  // p is on this stack: a root
            return reinterpret_cast<void*>(p);
        }
        std::uint64_t got = refill(t, spc);
        nosuspend_exit();
        if (GA_UNLIKELY(t->populate_bytes != 0)) populate_growth(t);
        mheap.maybe_pay_scavenge_owed();
        if (got == 0) return nullptr;
        if (got > 1) grew += got;
    }
}

// ---- sweeping ----
static std::atomic<std::uint32_t> sweep_cursor{0};

// Go's mheap.reclaim: before the heap takes new pages for an allocation of
// npages, sweep unswept spans (large ones first, any class) until that many
// pages have been freed, so garbage is reused before the heap grows.
// Caller: nosuspend; it leaves early for a stop. Go finds the spans to free
// through its pageMarks bitmap; this pops unswept spans in list order and
// sweeps the live ones it meets too (work the sweep owes anyway), so its
// bound counts spans swept: kReclaimSpans.
static void reclaim(std::size_t npages) {
    if (gcs.unswept.load(std::memory_order_relaxed) <= 0) return;
    std::uint32_t sg = sg_now();
    int un = ((sg >> 1) & 1) ^ 1;
    std::size_t freed = 0, swept = 0;
    for (int spc = 0; spc < kNumSpanClasses && freed < npages && swept < kReclaimSpans && !stop_pending(); spc++) {
        GcCentral& c = central[spc];
        while (freed < npages && swept < kReclaimSpans && !stop_pending()) {
            c.lock.lock();
            MSpan* s = pop(&c.full[un]);
            if (s == nullptr) s = pop(&c.partial[un]);
            c.lock.unlock();
            if (s == nullptr) break;
            std::size_t np = s->npages;
            swept++;
            if (sweep_span(s, sg)) put_swept(s, sg);
            else freed += np;
        }
    }
}

// Sweep up to max_spans unswept spans (the collector's background sweeper).
std::size_t sweep_some(std::size_t max_spans) {
    std::size_t done = 0;
    std::uint32_t sg = sg_now();
    int sw = (sg >> 1) & 1, un = sw ^ 1;
    for (int k = 0; k < kNumSpanClasses && done < max_spans; k++) {
        int spc = static_cast<int>((sweep_cursor.load(std::memory_order_relaxed) + k) % kNumSpanClasses);
        GcCentral& c = central[spc];
        while (done < max_spans) {
            c.lock.lock();
            bool partial = true;
            MSpan* s = pop(&c.partial[un]);
            if (s == nullptr) {
                s = pop(&c.full[un]);
                partial = false;
            }
            c.lock.unlock();
            if (s == nullptr) break;
            (void)partial;
            if (sweep_span(s, sg)) put_swept(s, sg);
            done++;
        }
        if (done >= max_spans) {
            sweep_cursor.store(static_cast<std::uint32_t>(spc), std::memory_order_relaxed);
            break;
        }
    }
    return done;
}

// Go's gcPaceSweeper: spread the sweep of the spans left unswept at the flip
// over the heap growth from the live heap to the next trigger (at least
// 1 MiB), so that sweeping is done before the next cycle must start.
void sweep_pace() {
    std::int64_t un = gcs.unswept.load(std::memory_order_relaxed);
    std::uint64_t live = gcs.heap_live.load(std::memory_order_relaxed);
    std::uint64_t trig = gcs.trigger.load(std::memory_order_relaxed);
    std::uint64_t dist = trig > live ? trig - live : 0;
    if (dist < (std::uint64_t{1} << 20)) dist = std::uint64_t{1} << 20;
    gcs.sweep_basis.store(live, std::memory_order_relaxed);
    gcs.sweep_unswept0.store(un, std::memory_order_relaxed);
    gcs.sweep_per_byte.store(un > 0 ? static_cast<double>(un) / static_cast<double>(dist) : 0.0,
                             std::memory_order_relaxed);
}

// Go's deductSweepCredit: sweep until the spans swept since the flip keep up
// with the heap's growth since then. The background sweeper usually stays
// ahead (then this is a few loads); when it gets no CPU, the allocating
// threads do the sweeping. A span at a time, each in its own nosuspend
// region (as cache_span's sweeps), so a stop waits for one span at most.
void sweep_credit() {
    std::int64_t un = gcs.unswept.load(std::memory_order_relaxed);
    if (un <= 0) return;
    double r = gcs.sweep_per_byte.load(std::memory_order_relaxed);
    std::uint64_t live = gcs.heap_live.load(std::memory_order_relaxed);
    std::uint64_t basis = gcs.sweep_basis.load(std::memory_order_relaxed);
    if (r <= 0 || live <= basis) return;
    double target = r * static_cast<double>(live - basis);
    std::int64_t done = gcs.sweep_unswept0.load(std::memory_order_relaxed) - un;
    for (int n = 0; static_cast<double>(done) < target && n < 64; n++) {
        nosuspend_enter();
        std::size_t k = sweep_some(1);
        nosuspend_exit();
        if (k == 0) break;  // nothing unswept left (or another cycle began)
        done++;
    }
}

bool sweep_done() {
    std::uint32_t sg = sg_now();
    int un = ((sg >> 1) & 1) ^ 1;
    for (int spc = 0; spc < kNumSpanClasses; spc++) {
        GcCentral& c = central[spc];
        LockGuard g(c.lock);
        if (c.partial[un] != nullptr || c.full[un] != nullptr) return false;
    }
    return true;
}

void finish_sweep() {
    while (sweep_some(1 << 20) != 0) {
    }
}

void for_all_spans(void (*f)(MSpan*, void*), void* arg) {
    for (int spc = 0; spc < kNumSpanClasses; spc++) {
        GcCentral& c = central[spc];
        LockGuard g(c.lock);
        for (int i = 0; i < 2; i++) {
            for (MSpan* s = c.partial[i]; s != nullptr; s = s->next) f(s, arg);
            for (MSpan* s = c.full[i]; s != nullptr; s = s->next) f(s, arg);
        }
    }
}

std::uintptr_t find_object(std::uintptr_t p, MSpan** sp, std::uint32_t* idxp) {
    return find_object_at<false>(p, sp, idxp);
}

void heap_init_gc() { heap_init(); }

// ---- API entry points of allocation ----
namespace detail {

__thread Probe tls_probe __attribute__((tls_model("initial-exec"), visibility("default"))) = {0, 0, nullptr, 0};

void* alloc(std::size_t size, std::size_t count, const TypeInfo* ti) {
    std::size_t n;
    if (__builtin_mul_overflow(size, count, &n) || n > kMaxAlloc) out_of_memory(size * count);
    if (n == 0) return zerobase;
    void* p = mallocgc(n, ti, count);
    if (p == nullptr) out_of_memory(n);
    return p;
}

// make<T>'s allocation. The fast path takes the next free slot of the
// thread's cached span for the type's span class (cached in ti->spc) with no
// call and no register spill: ~30 instructions. Everything else — refill,
// zeroing large objects, heap bits, a pending stop — leaves through a tail
// call (alloc_one_finish) or the general path (mallocgc).
static GA_NOINLINE void* alloc_one_slow(std::size_t size, TypeInfo* ti) {
    if (__atomic_load_n(&ti->spc, __ATOMIC_RELAXED) == 0) {
        bool noscan = ti->kind == detail::kLayoutNoscan;
        if (size != 0 && size <= kMaxSmallSize && !(noscan && size < kTinySize))
            __atomic_store_n(&ti->spc, static_cast<std::uint8_t>(size_to_class(size) << 1 | (noscan ? 1 : 0)),
                             __ATOMIC_RELAXED);
    }
    return alloc(size, 1, ti);
}

// The fast path's exits that need work or a call: zero a large slot, write
// heap bits, leave the nosuspend region (which may stop here).
static GA_NOINLINE void* alloc_one_finish(MSpan* s, std::uintptr_t p, const TypeInfo* ti, bool zero) {
    std::uintptr_t es = s->elemsize;
    if (zero) std::memset(reinterpret_cast<void*>(p), 0, es);
    if (ti->kind != detail::kLayoutNoscan) {
        const void* u = s->uniform.load(std::memory_order_relaxed);
        if (u == nullptr)
            write_heap_bits(s, (p - s->base) >> 3, es >> 3, ti, 1);
        else if (u != ti)
            type_switch(s, p, ti, 1);
    }
    nosuspend_exit();
    return reinterpret_cast<void*>(p);
}

void* alloc_one(std::size_t size, TypeInfo* ti) {
    GcThread* t = tls_gc_thread;
    if (GA_UNLIKELY(t == nullptr)) return alloc_one_slow(size, ti);
    // spc 0 (not learned yet, or not a small class) is the large-object
    // class, whose entry is never filled: the slow path.
    std::size_t spc = __atomic_load_n(&ti->spc, __ATOMIC_RELAXED);
    AllocEntry* e = &t->alloc[spc];
    nosuspend_enter();
    std::uint64_t c = e->cache;
    if (GA_UNLIKELY(c == 0)) {
        // Refill through the general path, which polls for a stop when it
        // leaves its own region (a request that arrived here stays pending).
        tls_nosuspend--;
        return alloc_one_slow(size, ti);
    }
    // (Every load before the first store: the stores could alias the entry.)
    MSpan* s = e->span;
    std::atomic<std::uint64_t>* ab = e->abw;
    std::uintptr_t es = e->elemsize;
    std::uintptr_t p = e->wbase;
    bool zero = e->needzero;
    std::uint64_t b = static_cast<std::uint64_t>(__builtin_ctzll(c));
    claim_slot(e, ab, c);
    p += b * es;
    if (zero && es == 16) {
        reinterpret_cast<std::uint64_t*>(p)[0] = 0;
        reinterpret_cast<std::uint64_t*>(p)[1] = 0;
        zero = false;
    }
    if (GA_UNLIKELY(zero) || ((spc & 1) == 0 && s->uniform.load(std::memory_order_relaxed) != ti))
        return alloc_one_finish(s, p, ti, zero);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // (A signal that found this thread in the region set tls_suspend_pending,
    // but only while a stop is requested: gc_stop_requested alone decides.)
    if (GA_UNLIKELY(--tls_nosuspend == 0 && __atomic_load_n(&gc_stop_requested, __ATOMIC_RELAXED) != 0)) {
        tls_nosuspend++;
        return alloc_one_finish(s, p, ti, false);
    }
    return reinterpret_cast<void*>(p);
}

// The first object of a type: allocated conservative, constructed with the
// probe recording where its Ptr<> members are.
void* alloc_first(std::size_t size, std::size_t count, TypeInfo* ti, Probe* saved) {
    static const TypeInfo conservative = {kLayoutConservative, 0, nullptr};
    std::size_t n;
    if (__builtin_mul_overflow(size, count, &n) || n > kMaxAlloc) out_of_memory(size * count);
    void* p = n == 0 ? static_cast<void*>(zerobase) : mallocgc(n, &conservative, 1);
    if (p == nullptr) out_of_memory(n);
    *saved = tls_probe;
    std::size_t words = (size + 7) / 8;
    std::size_t nbits = count == 0 ? 64 : words * count;
    auto* bits = static_cast<std::uint64_t*>(ga_calloc((nbits + 63) / 64, 8));
    if (bits == nullptr) out_of_memory(nbits / 8);
    tls_probe = Probe{reinterpret_cast<std::uintptr_t>(p), size * count, bits, 0};
    (void)ti;
    return p;
}

void learn_layout(TypeInfo* ti, Probe* saved) {
    Probe mine = tls_probe;
    tls_probe = *saved;
    if (ti != nullptr && __atomic_load_n(&ti->kind, __ATOMIC_ACQUIRE) == kLayoutUnknown) {
        if (!mine.found) {
            __atomic_store_n(&ti->kind, kLayoutNoscan, __ATOMIC_RELEASE);
        } else {
            // The first element's bits are the type's mask.
            std::size_t words = ti->words, mw = (words + 63) / 64;
            auto* mask = static_cast<std::uint64_t*>(ga_calloc(mw, 8));
            if (mask == nullptr) out_of_memory(mw * 8);
            for (std::size_t i = 0; i < words; i++)
                if ((mine.bits[i >> 6] >> (i & 63)) & 1) mask[i >> 6] |= std::uint64_t{1} << (i & 63);
            // Two threads can both construct a first T: the one that claims
            // the type publishes mask and then kind; the others free their
            // (equal) masks and leave kind to it (their next make<T> may probe
            // once more). Readers load mask only after an acquire load of kind
            // saw Precise.
            if (__atomic_exchange_n(&ti->claimed, 1, __ATOMIC_ACQ_REL) == 0) {
                ti->mask = mask;
                __atomic_store_n(&ti->kind, kLayoutPrecise, __ATOMIC_RELEASE);
            } else {
                ga_free(mask);
            }
        }
    }
    // The first object itself was allocated conservative (every word a
    // pointer): now that its layout is known, clear the bits of its other
    // words. Atomic AND: the span may be another thread's by now; if that
    // thread's plain store of a neighbour's bits overwrites this, the object
    // just stays conservative (safe).
    MSpan* s;
    std::uint32_t idx;
    if (mine.len != 0 && find_object(mine.base, &s, &idx) == mine.base && s->heapBits != nullptr) {
        std::size_t b0 = (mine.base - s->base) >> 3, nw = mine.len >> 3;
        for (std::size_t i = 0; i < nw; i++) {
            if ((mine.bits[i >> 6] >> (i & 63)) & 1) continue;
            std::size_t b = b0 + i;
            s->heapBits[b >> 6].fetch_and(~(std::uint64_t{1} << (b & 63)), std::memory_order_relaxed);
        }
        // A large first object (an array) is now precise: its remaining heap
        // bits are its Ptr<> fields. Release: a marker that sees the flag
        // (acquire, mark.cpp) sees the narrowed bits.
        if (s->sizeclass == 0 && ti != nullptr && __atomic_load_n(&ti->kind, __ATOMIC_ACQUIRE) == kLayoutPrecise)
            __atomic_fetch_or(&s->gcflags, kSpanPreciseLarge, __ATOMIC_RELEASE);
    }
    ga_free(mine.bits);
}

}  // namespace detail

void* alloc(std::size_t bytes, bool scan) {
    static const TypeInfo noscan_ti = {detail::kLayoutNoscan, 0, nullptr};
    static const TypeInfo scan_ti = {detail::kLayoutConservative, 0, nullptr};
    return detail::alloc(bytes, 1, scan ? &scan_ti : &noscan_ti);
}

// find_object for the API, which may run while the span is being swept (the
// sweeper swaps allocBits and gcmarkBits): retry until no sweep overlapped.
static std::uintptr_t find_object_stable(std::uintptr_t p, MSpan** sp) {
    for (;;) {
        MSpan* s = span_of(p);
        std::uint32_t g1 = s ? s->sweepgen.load(std::memory_order_acquire) : 0;
        std::uint32_t idx;
        std::uintptr_t o = find_object(p, sp, &idx);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s == nullptr) return o;
        std::uint32_t g2 = s->sweepgen.load(std::memory_order_acquire);
        if (g1 == g2 && g1 != sg_now() - 1) return o;
        sched_yield();
    }
}

void* base_of(const void* p) {
    MSpan* s;
    return reinterpret_cast<void*>(find_object_stable(reinterpret_cast<std::uintptr_t>(p), &s));
}

std::size_t size_of(const void* p) {
    MSpan* s;
    if (find_object_stable(reinterpret_cast<std::uintptr_t>(p), &s) == 0) return 0;
    return s->elemsize;
}

}  // namespace goalloc::gc

extern "C" {
GA_API void* ga_gc_alloc(size_t size, int flags) {
    static const goalloc::gc::TypeInfo noscan_ti = {goalloc::gc::detail::kLayoutNoscan, 0, nullptr};
    static const goalloc::gc::TypeInfo scan_ti = {goalloc::gc::detail::kLayoutConservative, 0, nullptr};
    const goalloc::gc::TypeInfo* ti = (flags & GA_GC_NOSCAN) ? &noscan_ti : &scan_ti;
    if (size > goalloc::kMaxAlloc) {
        errno = ENOMEM;
        return nullptr;
    }
    if (size == 0) return goalloc::gc::zerobase;
    void* p = goalloc::gc::mallocgc(size, ti, 1);
    if (p == nullptr) errno = ENOMEM;
    return p;
}
}
