// mheap.cpp — span allocation, heap growth over arenas, scavenging.
#include "mheap.h"

#include <new>

#include "internal.h"
#include "options.h"
#include "sys.h"

namespace goalloc {

std::atomic<HeapArena*> arena_index[kArenaIndexEntries];
std::atomic<std::uintptr_t> arena_lo{0}, arena_hi{0};  // mheap.lock (written)
constinit MHeap mheap;

// Go's first arena hint on linux/amd64: 0x00c0 << 32.
static constexpr std::uintptr_t kFirstArenaHint = std::uintptr_t{0x00c0} << 32;

static std::atomic<int> heap_state{0};  // 0 new, 1 initialising, 2 ready

void heap_init() {
    if (GA_LIKELY(heap_state.load(std::memory_order_acquire) == 2)) return;
    int expected = 0;
    if (heap_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        const Options& o = options();
        for (int c = 0; c < kNumSizeClasses; c++) mheap.central[c].sizeclass = c;
        mheap.spanalloc.set_source(&MHeap::meta_chunk);
        for (FixAlloc& f : mheap.gcbitalloc) f.set_source(&MHeap::meta_chunk);
        for (FixAlloc& f : mheap.mbitalloc) f.set_source(&MHeap::meta_chunk);
#ifdef GOALLOC_SANITIZER
        mheap.next_hint = 0;  // sanitizers own fixed parts of the address space
#else
        mheap.next_hint = o.arena_hints ? kFirstArenaHint : 0;
#endif
        heap_state.store(2, std::memory_order_release);
    } else {
        while (heap_state.load(std::memory_order_acquire) != 2) __builtin_ia32_pause();
    }
}

// Reserve `bytes` (a multiple of kArenaBytes) of new arenas and register them.
bool MHeap::new_arenas_locked(std::size_t bytes) {
    void* hint = reinterpret_cast<void*>(next_hint);
    void* r = sys::reserve(hint, bytes, kArenaBytes);
    if (r == nullptr) return false;
    std::uintptr_t base = reinterpret_cast<std::uintptr_t>(r);
    if (base + bytes > (std::uintptr_t{1} << 48)) {
        sys::free(r, bytes, 0, 0);
        return false;
    }
    std::size_t n = bytes / kArenaBytes;
    for (std::size_t i = 0; i < n; i++) {
        auto* a = static_cast<HeapArena*>(sys::alloc(sizeof(HeapArena)));
        if (a != nullptr) a->base = base + i * kArenaBytes;
        if (a == nullptr || !pages.add_arena(a)) {
            // Arenas registered so far stay (empty, reserved); the rest is returned.
            if (a != nullptr) sys::free_metadata(a, sizeof(HeapArena));
            std::uintptr_t rest = base + i * kArenaBytes;
            sys::free(reinterpret_cast<void*>(rest), bytes - i * kArenaBytes, 0, 0);
            return false;
        }
        arena_index[a->base >> kArenaShift].store(a, std::memory_order_release);
        // Widen [arena_lo, arena_hi): hi first while lo is still 0 (the
        // range only ever grows, so a reader sees a range within the final one
        // that holds every arena registered before its loads).
        std::uintptr_t lo = arena_lo.load(std::memory_order_relaxed), hi = arena_hi.load(std::memory_order_relaxed);
        if (a->base + kArenaBytes > hi) arena_hi.store(a->base + kArenaBytes, std::memory_order_release);
        if (lo == 0 || a->base < lo) arena_lo.store(a->base, std::memory_order_release);
        arenas.fetch_add(1, std::memory_order_relaxed);
    }
    if (next_hint != 0) next_hint = base + bytes;
    cur_base = base;
    cur_end = base + bytes;
    // Map (and advise) the whole reservation now, in one call each, rather
    // than at each 4 MiB growth: a growth runs under this lock, inside a
    // nosuspend region of a collected heap's thread, and its mmap and
    // madvise wait for the address-space lock, which a collapse or a
    // populate can hold for milliseconds (bench/results/NOTES.md, fourteenth
    // pass).
    ahead_end = sys::map_ahead(r, bytes) ? cur_end : base;
    ahead_advised = hugepages && ahead_end > base;
    if (ahead_advised) sys::hugepage(r, bytes);
    if (options().verbose) {
        Msg m;
        m.s("goalloc: reserved ").dec(n).s(" arena(s) at ").hex(base).s("\n");
        m.write_stderr();
    }
    return true;
}

std::atomic<void (*)(std::uintptr_t, std::size_t, bool)> heap_grow_hook{nullptr};

void MHeap::note_grown(std::uintptr_t base, std::size_t bytes) {
    GA_ASSERT_LOCK_HELD(lock);
    mapped_bytes += bytes;
    if (!hugepages && mapped_bytes >= hugepages_from) enable_hugepages_locked();  // covers this range too
    else if (hugepages && !(ahead_advised && base + bytes <= ahead_end)) sys::hugepage(reinterpret_cast<void*>(base), bytes);
    if (auto* h = heap_grow_hook.load(std::memory_order_acquire)) h(base, bytes, hugepages);
}

void MHeap::enable_hugepages_locked() {
    GA_ASSERT_LOCK_HELD(lock);
    hugepages = true;
    for (std::size_t i = 0; i < pages.narenas(); i++) {
        HeapArena* a = pages.arena(i);
        sys::hugepage(reinterpret_cast<void*>(a->base), std::size_t{a->mappedPages} * kPageSize);
    }
    // What is mapped ahead, not grown into yet.
    if (ahead_end > cur_base) {
        sys::hugepage(reinterpret_cast<void*>(cur_base), ahead_end - cur_base);
        ahead_advised = true;
    }
    if (mapped_bytes != 0) {
        collapse_narenas = pages.narenas();
        collapse_wanted.store(true, std::memory_order_release);
    }
}

bool MHeap::take_collapse_request() {
    if (!collapse_wanted.load(std::memory_order_relaxed) || !collapse_wanted.exchange(false, std::memory_order_acquire))
        return false;
    collapse_arena = 0;
    collapse_off = 0;
    collapse_running.store(true, std::memory_order_relaxed);
    return true;
}

bool MHeap::collapse_step() {
    if (!collapse_running.load(std::memory_order_relaxed)) return false;
    constexpr std::size_t kHugePage = std::size_t{2} << 20;
    std::uintptr_t base = 0;
    std::size_t bytes = 0;
    for (;;) {
        {
            LockGuard g(lock);
            if (collapse_arena < collapse_narenas) {
                HeapArena* a = pages.arena(collapse_arena);
                base = a->base;
                bytes = std::size_t{a->mappedPages} * kPageSize;
            }
        }
        if (base == 0) {
            collapse_running.store(false, std::memory_order_relaxed);
            return false;
        }
        // Arenas are kHugePage-aligned, so their huge pages are whole.
        if (collapse_off + kHugePage <= bytes) break;
        collapse_arena++;
        collapse_off = 0;
        base = 0;
    }
    // Arenas and their mappings are never unmapped, so the range stays valid
    // outside the lock.
    collapse_in_page.store(true, std::memory_order_relaxed);
    bool ok = sys::collapse(reinterpret_cast<void*>(base + collapse_off), kHugePage);
    collapse_in_page.store(false, std::memory_order_relaxed);
    collapse_off += kHugePage;
    if (!ok) collapse_running.store(false, std::memory_order_relaxed);  // the rest is khugepaged's
    return ok;
}

void* MHeap::meta_chunk(std::size_t n) {
    MHeap& h = mheap;
    GA_ASSERT_LOCK_HELD(h.lock);
    if (h.meta_left < n && h.meta_spare != nullptr) {
        h.meta_cur = h.meta_spare;
        h.meta_left = kMetaRegionBytes;
        h.meta_spare = nullptr;
    }
    if (h.meta_left < n) return sys::alloc(n);
    void* p = h.meta_cur;
    h.meta_cur += n;
    h.meta_left -= n;
    return p;  // zero: fresh anonymous memory, faulted in by populate
}

void* MHeap::metadata_region_to_fill() {
    {
        LockGuard g(lock);
        if (!hugepages || meta_spare != nullptr || meta_filling) return nullptr;
        meta_filling = true;
    }
    void* r = sys::alloc_huge(kMetaRegionBytes);
    if (r == nullptr) {
        LockGuard g(lock);
        meta_filling = false;
    }
    return r;
}

void MHeap::offer_metadata_region(void* region) {
    LockGuard g(lock);
    GA_ASSERT(meta_filling && meta_spare == nullptr);
    meta_filling = false;
    meta_spare = static_cast<char*>(region);
}

void MHeap::set_hugepages_from(std::size_t from_bytes) {
    LockGuard g(lock);
    hugepages_from = from_bytes;
    if (!hugepages && mapped_bytes >= hugepages_from) enable_hugepages_locked();
}

// Reserved -> Prepared for a growth into [base, base+n): accounting only
// where the reservation was mapped ahead, else the system call.
bool MHeap::map_for_growth(std::uintptr_t base, std::size_t n) {
    GA_ASSERT_LOCK_HELD(lock);
    if (base + n <= ahead_end) {
        sys::take_ahead(n);
        return true;
    }
    return sys::map(reinterpret_cast<void*>(base), n);
}

bool MHeap::grow_locked(std::size_t npages) {
    GA_ASSERT_LOCK_HELD(lock);
    if (npages > kMaxAlloc / kPageSize) return false;
    std::size_t ask = (npages * kPageSize + kHeapGrowBytes - 1) & ~(kHeapGrowBytes - 1);
    if (cur_end - cur_base < ask) {
        // Map what is left of the current reservation so it is not wasted:
        // it coalesces with the new arenas when those are contiguous.
        if (cur_end > cur_base) {
            if (map_for_growth(cur_base, cur_end - cur_base)) {
                pages.grow(cur_base, (cur_end - cur_base) / kPageSize);
                note_grown(cur_base, cur_end - cur_base);
            }
            cur_base = cur_end;
            return true;  // progress: the caller retries, and grows again if needed
        }
        std::size_t bytes = (ask + kArenaBytes - 1) & ~(kArenaBytes - 1);
        if (!new_arenas_locked(bytes)) return false;
    }
    if (!map_for_growth(cur_base, ask)) return false;
    pages.grow(cur_base, ask / kPageSize);
    note_grown(cur_base, ask);
    cur_base += ask;
    return true;
}

static void set_spans(std::uintptr_t base, std::size_t npages, MSpan* s) {
    for (std::size_t i = 0; i < npages; i++) {
        std::uintptr_t p = base + i * kPageSize;
        arena_of(p)->spans[(p >> kPageShift) & (kPagesPerArena - 1)].store(s, std::memory_order_relaxed);
    }
}

MSpan* MHeap::alloc_span(std::size_t npages, int sizeclass, SpanKind kind, std::size_t align,
                         std::size_t reserve) {
    std::size_t extra = align > kPageSize ? align / kPageSize - 1 : 0;
    if (npages > kMaxAlloc / kPageSize || extra > kMaxAlloc / kPageSize) return nullptr;
    std::size_t want = npages + extra;
    LockGuard g(lock);
    if (sizeclass == 0 && reserve == 0 && npages <= kLargeCachePages && large_cache[npages] != nullptr &&
        large_cache[npages]->kind == kind && large_cache[npages]->base % align == 0) {
        // (An aligned request reuses the newest cached span only if it happens
        // to be aligned: a loop of aligned allocations frees aligned spans.)
        MSpan* s = large_cache[npages];
        large_cache[npages] = s->next;
        s->next = nullptr;
        large_cache_bytes -= npages * kPageSize;
        s->needzero = true;
        s->state.store(SpanState::InUse, std::memory_order_release);
        spans_in_use.fetch_add(1, std::memory_order_relaxed);
        return s;
    }
    std::size_t scav = 0;
    bool needzero = false;
    std::uintptr_t base;
    const std::size_t mapped0 = mapped_bytes;
    while ((base = pages.alloc(want, &scav, &needzero)) == 0)
        if (!grow_locked(want)) return nullptr;
    if (scav != 0) sys::used(nullptr, scav * kPageSize);
    if (extra != 0) {
        std::uintptr_t aligned = (base + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
        std::size_t head = (aligned - base) / kPageSize, tail = extra - head;
        if (head) pages.free(base, head);
        if (tail) pages.free(aligned + npages * kPageSize, tail);
        base = aligned;
    }
    std::uint32_t nw = MSpan::bitmap_words(static_cast<std::uint32_t>(npages), sizeclass, reserve);
    void* mem = spanalloc.alloc();
    void* bits = mem != nullptr ? bitalloc(kind, nw).alloc() : nullptr;
    if (bits == nullptr) {
        if (mem != nullptr) spanalloc.free(mem);
        pages.free(base, npages);
        return nullptr;
    }
    MSpan* s = new (mem) MSpan();
    s->init(base, static_cast<std::uint32_t>(npages), sizeclass, kind, reserve, bits);
    s->needzero = needzero;
    if (sizeclass == 0) {  // a large span is born holding its one allocated object
        s->allocBits[0].store(~std::uint64_t{0}, std::memory_order_relaxed);
        s->allocCount.store(1, std::memory_order_relaxed);
    }
    set_spans(base, npages, s);
    s->state.store(SpanState::InUse, std::memory_order_release);
    spans_in_use.fetch_add(1, std::memory_order_relaxed);
    owe_scavenge_locked(mapped_bytes - mapped0);
    return s;
}

void MHeap::owe_scavenge_locked(std::size_t grown) {
    GA_ASSERT_LOCK_HELD(lock);
    const std::uint64_t limit = scavenge_limit.load(std::memory_order_relaxed),
                        goal = scavenge_growth_goal.load(std::memory_order_relaxed);
    if (limit == UINT64_MAX && (goal == UINT64_MAX || grown == 0)) return;
    const std::uint64_t r = retained();
    std::uint64_t todo = 0;
    if (limit != UINT64_MAX) {
        const std::uint64_t ready = r + sys::stats.metadata.load(std::memory_order_relaxed);
        if (ready > limit) todo = ready - limit;
    }
    if (goal != UINT64_MAX && grown != 0 && r + grown > goal) {
        const std::uint64_t over = r + grown - goal, g = over < grown ? over : grown;
        if (g > todo) todo = g;
    }
    if (todo == 0) return;
    todo = (todo + kPageSize - 1) & ~std::uint64_t{kPageSize - 1};
    std::uint64_t cur = scavenge_owed.load(std::memory_order_relaxed);
    while (cur < todo && !scavenge_owed.compare_exchange_weak(cur, todo, std::memory_order_relaxed)) {
    }
}

std::size_t MHeap::pay_scavenge_owed() {
    constexpr std::uint64_t kStep = 64 << 10;
    std::size_t total = 0;
    std::uint64_t owed = scavenge_owed.load(std::memory_order_relaxed);
    while (owed != 0) {
        // Release first, then take what was released off the debt: a free
        // run may be shorter than the step (a 1-page hole), or longer (a
        // whole huge page). Threads paying at once overpay by at most a step
        // each.
        const std::size_t n = scavenge_one(static_cast<std::size_t>(owed < kStep ? owed : kStep));
        if (n == 0) {  // no free Ready page: nothing can be paid until pages are freed
            scavenge_owed.store(0, std::memory_order_relaxed);
            break;
        }
        total += n;
        owed = scavenge_owed.load(std::memory_order_relaxed);
        while (owed != 0 && !scavenge_owed.compare_exchange_weak(owed, owed > n ? owed - n : 0,
                                                                 std::memory_order_relaxed)) {
        }
        owed = owed > n ? owed - n : 0;
    }
    if (total != 0) scavenged_assist_bytes.fetch_add(total, std::memory_order_relaxed);
    return total;
}

std::atomic<void (*)(void (*fn)(void*), void* arg)> blocking_hook{nullptr};

void MHeap::pay_scavenge_owed_blocking() {
    auto pay = [](void* h) { static_cast<MHeap*>(h)->pay_scavenge_owed(); };
    if (auto hook = blocking_hook.load(std::memory_order_acquire)) hook(pay, this);
    else pay_scavenge_owed();
}

bool MHeap::resize_large(MSpan* s, std::size_t npages) {
    GA_CHECK(s->sizeclass == 0);
    if (npages == 0 || npages > kMaxAlloc / kPageSize) return false;
    LockGuard g(lock);
    std::uintptr_t end = s->base + std::uintptr_t{s->npages} * kPageSize;
    if (npages < s->npages) {
        std::size_t tail = s->npages - npages;
        set_spans(end - tail * kPageSize, tail, nullptr);
        pages.free(end - tail * kPageSize, tail);
    } else if (npages > s->npages) {
        std::size_t more = npages - s->npages, scav = 0;
        bool needzero = false;
        if (!pages.alloc_at(end, more, &scav, &needzero)) return false;
        if (scav != 0) sys::used(nullptr, scav * kPageSize);
        set_spans(end, more, s);
    }
    s->npages = static_cast<std::uint32_t>(npages);
    s->elemsize = std::uintptr_t{npages} * kPageSize;
    s->limit = s->base + s->elemsize;
    return true;
}

void MHeap::free_large_locked(MSpan* s) {
    GA_ASSERT_LOCK_HELD(lock);
    std::size_t bytes = std::size_t{s->npages} * kPageSize;
    if (s->npages > kLargeCachePages || large_cache_bytes + bytes > kLargeCacheBytes) {
        free_span_locked(s);
        return;
    }
    s->state.store(SpanState::LargeCached, std::memory_order_release);
    spans_in_use.fetch_sub(1, std::memory_order_relaxed);
    s->next = large_cache[s->npages];
    large_cache[s->npages] = s;
    large_cache_bytes += bytes;
}

std::size_t MHeap::flush_large_cache() {
    LockGuard g(lock);
    std::size_t n = 0;
    for (std::size_t np = 0; np <= kLargeCachePages; np++) {
        while (MSpan* s = large_cache[np]) {
            large_cache[np] = s->next;
            s->next = nullptr;
            s->state.store(SpanState::InUse, std::memory_order_relaxed);  // free_span_locked expects it
            spans_in_use.fetch_add(1, std::memory_order_relaxed);
            free_span_locked(s);
            n++;
        }
    }
    large_cache_bytes = 0;
    return n;
}

void MHeap::free_span_locked(MSpan* s) {
    GA_ASSERT_LOCK_HELD(lock);
    GA_CHECK(s->state.load(std::memory_order_relaxed) == SpanState::InUse);
    set_spans(s->base, s->npages, nullptr);
    s->state.store(SpanState::Dead, std::memory_order_relaxed);
    pages.free(s->base, s->npages);
    spans_in_use.fetch_sub(1, std::memory_order_relaxed);
    bitalloc(s->kind, s->nwords).free(s->bitBlock);
    s->~MSpan();
    spanalloc.free(s);
}

void MHeap::free_span(MSpan* s) {
    LockGuard g(lock);
    free_span_locked(s);
}

std::uint64_t MHeap::retained() { return sys::stats.ready.load(std::memory_order_relaxed); }

std::uint64_t MHeap::inuse_bytes() {
    LockGuard g(lock);
    return static_cast<std::uint64_t>(mapped_bytes) - std::uint64_t{pages.free_pages()} * kPageSize;
}

std::uint64_t MHeap::free_ready_bytes() {
    LockGuard g(lock);
    return std::uint64_t{pages.free_pages() - pages.scav_pages()} * kPageSize;
}

std::size_t MHeap::scavenge_one(std::size_t max_bytes) {
    std::uintptr_t base;
    std::size_t n;
    {
        LockGuard g(lock);
        const std::size_t align = hugepages ? kHugePageBytes / kPageSize : 1;
        if (hugepages && max_bytes < kHugePageBytes) max_bytes = kHugePageBytes;
        base = pages.take_ready_high(max_bytes / kPageSize, align, &n);
        scav_loaned_pages += n;
    }
    if (base == 0) return 0;
    // The pages are in no span and not free: nobody else touches them now.
    sys::unused(reinterpret_cast<void*>(base), n * kPageSize);
    {
        LockGuard g(lock);
        pages.free_released(base, n);
        scav_loaned_pages -= n;
    }
    scavenged_bytes.fetch_add(n * kPageSize, std::memory_order_relaxed);
    return n * kPageSize;
}

void MHeap::check_states_locked() const {
    GA_ASSERT_LOCK_HELD(lock);
    // scavenge_one's sys::unused moves its run from Ready to Prepared without
    // the lock, one counter after the other: a run out on loan may be counted
    // in either state, or (between the two updates) in neither.
    const std::uint64_t prepared = sys::stats.prepared.load(std::memory_order_relaxed),
                        ready = sys::stats.ready.load(std::memory_order_relaxed);
    const std::uint64_t scav = std::uint64_t{pages.scav_pages()} * kPageSize,
                        loan = std::uint64_t{scav_loaned_pages} * kPageSize;
    if (prepared < scav || prepared > scav + loan) {
        Msg m;
        m.s("goalloc: heap validation failed: Prepared bytes ").dec(prepared).s(" but free Prepared pages hold ")
            .dec(scav).s(" (").dec(loan).s(" out with the scavenger)\n");
        m.fatal();
    }
    if (ready + prepared > mapped_bytes || ready + prepared + loan < mapped_bytes) {
        Msg m;
        m.s("goalloc: heap validation failed: Ready ").dec(ready).s(" + Prepared ").dec(prepared)
            .s(" bytes but ").dec(mapped_bytes).s(" mapped\n");
        m.fatal();
    }
}

std::size_t MHeap::scavenge_all() {
    LockGuard g(lock);
    std::size_t n = pages.scavenge(~std::size_t{0}, [](std::uintptr_t addr, std::size_t bytes) {
        sys::unused(reinterpret_cast<void*>(addr), bytes);
    });
    return n * kPageSize;
}

}  // namespace goalloc
