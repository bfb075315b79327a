// The tiers above the page allocator, each exercised directly: mheap spans
// and growth, mcentral's partial/full lists, the mcache's reuse rules, remote
// frees returning spans, thread exit, and the lock-order checker.
#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "goalloc/goalloc.h"
#include "mcache.h"
#include "mheap.h"
#include "sys.h"

using namespace goalloc;

namespace {
MCache fake_owner;  // stands for a thread's mcache in the mcentral tests
std::uint64_t SpansInUse() { return mheap.spans_in_use.load(); }
void MarkAllocated(MSpan* s, std::uint32_t n) {
    for (std::uint32_t i = 0; i < n; i++) s->allocBits[i / 64].fetch_or(std::uint64_t{1} << (i % 64));
    s->allocCount.store(s->count_alloc());
}
}  // namespace

TEST(MHeap, FirstGrowthMapsAtLeastFourMiB) {
    heap_init();
    ASSERT_EQ(sys::stats.prepared.load() + sys::stats.ready.load(), 0u) << "fresh process expected";
    MSpan* s = mheap.alloc_span(1, 0, SpanKind::Malloc);
    ASSERT_NE(s, nullptr);
    std::uint64_t mapped = sys::stats.prepared.load() + sys::stats.ready.load();
    EXPECT_GE(mapped, kHeapGrowBytes);
    EXPECT_EQ(sys::stats.ready.load(), kPageSize);  // only the span's page is Ready
    EXPECT_EQ(mheap.arenas.load(), 1u);
    mheap.free_span(s);
}

// A new arena reservation is mapped whole when it is reserved
// (sys::map_ahead), so the 4 MiB growths into it ask the OS for nothing: a
// growth runs under the heap lock, where an mmap can wait milliseconds for
// the address-space lock (bench/results/NOTES.md, fourteenth pass). With
// every OS request refused, the heap still grows by more than twice 4 MiB
// inside its first arena.
TEST(MHeap, GrowthsIntoAReservationAskTheOSForNothing) {
    heap_init();
    MSpan* first = mheap.alloc_span(1, 0, SpanKind::Malloc);  // reserves (and maps) the first arena
    ASSERT_NE(first, nullptr);
    ASSERT_EQ(mheap.arenas.load(), 1u);
    std::size_t n = mheap.pages.free_pages() + 2 * kHeapGrowBytes / kPageSize;
    ASSERT_LT(n * kPageSize, kArenaBytes / 2);
    std::uint64_t mapped0 = sys::stats.prepared.load() + sys::stats.ready.load();
    sys::inject_failures(1 << 20);
    MSpan* big = mheap.alloc_span(n, 0, SpanKind::Malloc);
    sys::inject_failures(0);
    ASSERT_NE(big, nullptr) << "a growth inside the reservation asked the OS";
    EXPECT_EQ(mheap.arenas.load(), 1u);
    // Counted as the heap grew into it: more than 8 MiB more is mapped.
    EXPECT_GT(sys::stats.prepared.load() + sys::stats.ready.load(), mapped0 + 2 * kHeapGrowBytes);
    mheap.free_span(big);
    mheap.free_span(first);
    ga_heap_validate();
}

TEST(MHeap, SpanOfEveryPageIsTheSpanAndFreeUnmapsIt) {
    heap_init();
    MSpan* s = mheap.alloc_span(5, 0, SpanKind::Malloc);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->base % kPageSize, 0u);
    for (std::uintptr_t off = 0; off < 5 * kPageSize; off += 777) EXPECT_EQ(span_of(s->base + off), s);
    EXPECT_NE(span_of(s->base + 5 * kPageSize), s);
    std::uintptr_t base = s->base;
    mheap.free_span(s);
    EXPECT_EQ(span_of(base), nullptr);
    EXPECT_NE(arena_of(base), nullptr);
}

TEST(MHeap, AlignedSpansAreAlignedAndGiveBackTheirSlack) {
    heap_init();
    MSpan* warm = mheap.alloc_span(600, 0, SpanKind::Malloc);  // make sure the heap has room
    mheap.free_span(warm);
    std::size_t before = mheap.pages.free_pages();
    for (std::size_t align : {std::size_t{16384}, std::size_t{1} << 20, std::size_t{2} << 20}) {
        MSpan* s = mheap.alloc_span(3, 0, SpanKind::Malloc, align);
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(s->base % align, 0u);
        EXPECT_EQ(mheap.pages.free_pages(), before - 3);  // head and tail slack went back
        mheap.free_span(s);
    }
    EXPECT_EQ(mheap.pages.free_pages(), before);
    ga_heap_validate();
}

TEST(MHeap, ExhaustedAddressSpaceIsAnErrorNotACrash) {
    heap_init();
    EXPECT_EQ(mheap.alloc_span(kMaxAlloc / kPageSize + 1, 0, SpanKind::Malloc), nullptr);
    sys::inject_failures(2);  // the next OS requests are refused
    MSpan* s = mheap.alloc_span(kArenaBytes / kPageSize * 2, 0, SpanKind::Malloc);
    EXPECT_EQ(s, nullptr);
    sys::inject_failures(0);
    s = mheap.alloc_span(1, 0, SpanKind::Malloc);  // still usable
    ASSERT_NE(s, nullptr);
    mheap.free_span(s);
    ga_heap_validate();
}

TEST(MCentral, SpansMoveBetweenFullAndPartialAndEmptyOnesGoBackToTheHeap) {
    heap_init();
    MCentral& c = mheap.central[5];
    std::uint64_t spans0 = SpansInUse();
    MSpan* a = c.cache_span(&fake_owner);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->owner.load(), &fake_owner);
    EXPECT_EQ(SpansInUse(), spans0 + 1);
    MarkAllocated(a, a->nelems);
    EXPECT_TRUE(c.uncache_span(a));
    EXPECT_EQ(a->owner.load(), nullptr);
    EXPECT_EQ(c.full.count, 1u);
    EXPECT_EQ(a->list, kListFull);

    MSpan* b = c.cache_span(&fake_owner);  // partial is empty: a fresh span
    ASSERT_NE(b, nullptr);
    EXPECT_NE(b, a);
    MarkAllocated(b, 10);
    c.uncache_span(b);
    EXPECT_EQ(c.partial.count, 1u);
    EXPECT_EQ(c.cache_span(&fake_owner), b);  // partial first
    EXPECT_EQ(b->allocCount.load(), 10u);

    // Empty it and give it back: the mcentral keeps one empty span...
    for (std::uint32_t w = 0; w < b->nwords; w++) b->allocBits[w].store(b->tail_mask(w));
    b->allocCount.store(0);
    c.uncache_span(b);
    EXPECT_EQ(SpansInUse(), spans0 + 2);
    EXPECT_EQ(c.partial.count, 1u);
    EXPECT_EQ(c.nempty, 1u);
    // ...and gives a second one back to the heap at once.
    MSpan* d = c.cache_span(&fake_owner);
    EXPECT_EQ(d, b);  // the kept empty span is reused first
    EXPECT_EQ(c.nempty, 0u);
    MSpan* e = c.cache_span(&fake_owner);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(SpansInUse(), spans0 + 3);
    c.uncache_span(d);
    c.uncache_span(e);
    EXPECT_EQ(SpansInUse(), spans0 + 2);
    EXPECT_EQ(c.release_empty(), 1u);  // malloc_trim gives back the kept one
    EXPECT_EQ(SpansInUse(), spans0 + 1);
    EXPECT_EQ(c.partial.count, 0u);
    // Take the made-up full span out again, so later tests see a clean heap.
    c.lock.lock();
    c.full.remove(a);
    c.lock.unlock();
    mheap.free_span(a);
    EXPECT_EQ(SpansInUse(), spans0);
    ga_heap_validate();
}

TEST(MCache, MallocFreePairReusesTheSameHotObject) {
    void* p = ga_malloc(48);
    ga_free(p);
    void* q = ga_malloc(48);
    EXPECT_EQ(q, p);
    ga_free(q);
}

TEST(MCache, ObjectFreedElsewhereInTheSpanIsReusedBeforeANewSpan) {
    // 16-byte class: 512 objects per span. Fill 300, free an early one (not in
    // the current 64-object word), then allocate the rest of the span.
    std::vector<void*> objs;
    for (int i = 0; i < 300; i++) objs.push_back(ga_malloc(16));
    std::uint64_t spans = SpansInUse();
    void* early = objs[10];
    ga_free(early);
    bool seen = false;
    for (int i = 0; i < 513 - 300; i++) {
        void* p = ga_malloc(16);
        seen |= p == early;
        objs.push_back(p);
    }
    EXPECT_TRUE(seen);
    EXPECT_EQ(SpansInUse(), spans);  // the freed slot filled the span; no new span yet
    for (void* p : objs) if (p != early) ga_free(p);
    ga_free(early);
}

TEST(MCache, OwnerFreesIntoItsFullSpansAndReusesThem) {
    ga_release_free_memory();
    std::vector<void*> objs;
    for (int i = 0; i < 1024; i++) objs.push_back(ga_malloc(16));  // exactly two spans
    void* next = ga_malloc(16);  // the entry moves on to a third span
    MSpan* s1 = span_of(reinterpret_cast<std::uintptr_t>(objs[0]));
    ASSERT_NE(s1, span_of(reinterpret_cast<std::uintptr_t>(next)));
    EXPECT_EQ(s1->owner.load(), tls_mcache);  // full, and still ours
    EXPECT_EQ(s1->list, kListOwnedFull);
    std::uint64_t spans = SpansInUse();
    for (int i = 0; i < 512; i++) ga_free(objs[i]);  // empties s1: kept, owned
    EXPECT_EQ(s1->allocCount.load(), 0u);
    EXPECT_EQ(s1->owner.load(), tls_mcache);
    EXPECT_EQ(SpansInUse(), spans);
    // Filling the third span and beyond reuses s1 before any new span.
    std::set<MSpan*> seen;
    std::vector<void*> more;
    for (int i = 0; i < 1023; i++) {
        more.push_back(ga_malloc(16));
        seen.insert(span_of(reinterpret_cast<std::uintptr_t>(more.back())));
    }
    EXPECT_TRUE(seen.count(s1));
    EXPECT_EQ(SpansInUse(), spans);
    for (void* p : more) ga_free(p);
    for (int i = 512; i < 1024; i++) ga_free(objs[i]);
    ga_free(next);
}

TEST(MCache, RemoteFreesIntoOwnedSpansReachTheOwner) {
    ga_release_free_memory();
    std::vector<void*> objs;
    for (int i = 0; i < 1024; i++) objs.push_back(ga_malloc(16));
    void* next = ga_malloc(16);
    MSpan* s1 = span_of(reinterpret_cast<std::uintptr_t>(objs[0]));
    MSpan* s2 = span_of(reinterpret_cast<std::uintptr_t>(objs[512]));
    std::uint64_t spans = SpansInUse();
    std::thread([&] {
        for (void* p : objs) ga_free(p);  // every free is remote
    }).join();
    EXPECT_EQ(s1->owner.load(), tls_mcache);  // still owned, with pending frees
    EXPECT_EQ(s1->remoteCount.load(), 512u);
    EXPECT_NE(tls_mcache->notify_head.load(), nullptr);  // and we were told
    // The owner reuses both spans before taking a new one.
    std::set<MSpan*> seen;
    for (int i = 0; i < 1024; i++) {
        objs[i] = ga_malloc(16);
        seen.insert(span_of(reinterpret_cast<std::uintptr_t>(objs[i])));
    }
    EXPECT_TRUE(seen.count(s1) && seen.count(s2));
    EXPECT_EQ(SpansInUse(), spans);
    for (void* p : objs) ga_free(p);
    ga_free(next);
    ga_thread_flush();
}

TEST(MCache, RemoteFreesOfUnownedSpansGiveThemBackToTheHeap) {
    ga_release_free_memory();
    std::uint64_t live0 = ga_heap_validate();
    std::vector<void*> objs;
    std::thread([&] {
        for (int i = 0; i < 1024; i++) objs.push_back(ga_malloc(16));  // two full spans
    }).join();  // the thread's exit gives them to the mcentral
    MSpan* s1 = span_of(reinterpret_cast<std::uintptr_t>(objs[0]));
    MSpan* s2 = span_of(reinterpret_cast<std::uintptr_t>(objs[512]));
    EXPECT_EQ(s1->owner.load(), nullptr);
    EXPECT_EQ(s1->list, kListFull);
    EXPECT_EQ(s2->list, kListFull);
    std::uint64_t spans = SpansInUse();
    // A thread that never allocated has no mcache: its frees stay remote.
    std::thread([&] {
        for (void* p : objs) ga_free(p);
    }).join();
    // The first span to empty is kept (kMaxEmptySpans == 1), the second goes back.
    EXPECT_EQ(SpansInUse(), spans - 1);
    EXPECT_EQ(mheap.central[2].nempty, 1u);
    ga_release_free_memory();
    EXPECT_EQ(SpansInUse(), spans - 2);
    EXPECT_EQ(ga_heap_validate(), live0);
}

TEST(MCache, AThreadFreeingIntoUnownedSpansAdoptsThem) {
    ga_release_free_memory();
    std::vector<void*> objs;
    std::thread([&] {
        for (int i = 0; i < 1024; i++) objs.push_back(ga_malloc(16));
    }).join();
    MSpan* s1 = span_of(reinterpret_cast<std::uintptr_t>(objs[0]));
    ASSERT_EQ(s1->owner.load(), nullptr);
    void* mine = ga_malloc(16);  // this thread has an mcache
    std::uint64_t spans = SpansInUse();
    ga_free(objs[0]);
    EXPECT_EQ(s1->owner.load(), tls_mcache);  // adopted on the first free
    EXPECT_EQ(s1->list, kListOwnedPartial);
    EXPECT_EQ(s1->allocCount.load(), 511u);
    for (int i = 1; i < 1024; i++) ga_free(objs[i]);
    EXPECT_EQ(SpansInUse(), spans);  // both kept, empty and owned
    EXPECT_EQ(span_of(reinterpret_cast<std::uintptr_t>(objs[512]))->owner.load(), tls_mcache);
    ga_free(mine);
    ga_release_free_memory();
    EXPECT_EQ(SpansInUse(), spans - 3);
}

TEST(MCache, ThreadExitReturnsItsSpans) {
    ga_release_free_memory();
    std::uint64_t spans = SpansInUse();
    std::thread([] {
        std::vector<void*> v;
        for (std::size_t n = 8; n <= 32768; n *= 2) v.push_back(ga_malloc(n));
        EXPECT_GT(SpansInUse(), 0u);
        for (void* p : v) ga_free(p);
    }).join();
    // Each mcentral may keep one empty span; releasing gives them all back.
    EXPECT_LE(SpansInUse(), spans + 13);
    ga_release_free_memory();
    EXPECT_EQ(SpansInUse(), spans);
    ga_stats_t st;
    ga_stats(&st);
    EXPECT_EQ(st.mallocs - st.frees, st.live_objects);
    EXPECT_EQ(ga_heap_validate(), st.live_objects);
}

#if GOALLOC_DEBUG_LEVEL >= 2
TEST(LockRankDeathTest, TakingAnMCentralLockUnderTheHeapLockAborts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            mheap.lock.lock();
            mheap.central[1].lock.lock();
        },
        "lock order violation");
}
#endif
