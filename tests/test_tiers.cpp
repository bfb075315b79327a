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
#include "mheap_testutil.h"
#include "sys.h"
#include "testutil.h"

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
    ASSERT_EQ(gatest::Mapped(), 0u) << "fresh process expected";
    MSpan* s = mheap.alloc_span(1, 0, SpanKind::Malloc);
    ASSERT_NE(s, nullptr);
    std::uint64_t mapped = gatest::Mapped();
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
    std::uint64_t mapped0 = gatest::Mapped();
    sys::inject_failures(1 << 20);
    MSpan* big = mheap.alloc_span(n, 0, SpanKind::Malloc);
    sys::inject_failures(0);
    ASSERT_NE(big, nullptr) << "a growth inside the reservation asked the OS";
    EXPECT_EQ(mheap.arenas.load(), 1u);
    // Counted as the heap grew into it: more than 8 MiB more is mapped.
    EXPECT_GT(gatest::Mapped(), mapped0 + 2 * kHeapGrowBytes);
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

// ---- scavenging by the allocating thread (mheap.h, scavenge_owed) ----
namespace {
using gatest::FreeReadyPages;
using gatest::ReadyWithMetadata;
using gatest::Mapped;
using gatest::KiB;
using gatest::MiB;
// 64 spans of 16 pages, every other one freed: 32 holes of 128 KiB (4 MiB),
// free and Ready, which the 32-page spans the tests allocate next cannot use
// (the last span stays: no hole borders the free tail of the heap's growth).
// It counts on a fresh heap (no free Ready page before it): ctest runs each
// test in a process of its own (gtest_discover_tests).
std::vector<MSpan*> MakeHoles() {
    heap_init();
    std::vector<MSpan*> all, kept;
    for (int i = 0; i < 64; i++) {
        MSpan* s = mheap.alloc_span(16, 0, SpanKind::Malloc);
        EXPECT_NE(s, nullptr);
        all.push_back(s);
    }
    for (std::size_t i = 0; i < all.size(); i++) {
        if (i % 2 == 0) mheap.free_span(all[i]);
        else kept.push_back(all[i]);
    }
    EXPECT_EQ(FreeReadyPages(), 32u * 16u);
    return kept;
}
}  // namespace

// Go 1.19 checks Ready memory against GOMEMLIMIT at every span allocation
// and releases the excess at once. Each allocation that takes Ready memory
// over the limit must come back under it before it returns, as long as free
// Ready pages are left to release; the allocating thread released them
// (nothing else runs here: no collector in this process).
TEST(MHeap, AnAllocationOverTheMemoryLimitReleasesTheExcessAtOnce) {
    std::vector<MSpan*> kept = MakeHoles();
    const std::uint64_t scav0 = mheap.scavenged_assist_bytes.load();
    const std::uint64_t limit = ReadyWithMetadata() + MiB;
    mheap.scavenge_limit.store(limit);
    std::vector<MSpan*> big;
    int over_with_pages_left = 0, went_over = 0;
    for (int i = 0; i < 32; i++) {  // 8 MiB of 256 KiB spans
        MSpan* s = mheap.alloc_span(32, 0, SpanKind::Malloc);
        ASSERT_NE(s, nullptr);
        mheap.maybe_pay_scavenge_owed();  // (as the malloc paths do; a no-op without a debt)
        big.push_back(s);
        if (ReadyWithMetadata() > limit) {
            went_over++;
            if (FreeReadyPages() != 0) over_with_pages_left++;
        }
    }
    mheap.scavenge_limit.store(UINT64_MAX);
    EXPECT_EQ(over_with_pages_left, 0) << "allocations left Ready memory over the limit with free Ready pages to release";
    EXPECT_GT(went_over, 0) << "the test should outgrow what can be released";
    EXPECT_EQ(FreeReadyPages(), 0u);
    EXPECT_EQ(mheap.scavenged_assist_bytes.load() - scav0, 4 * MiB) << "every hole, and nothing else, released";
    EXPECT_EQ(mheap.scavenge_owed.load(), 0u) << "a debt nothing can pay is dropped";
    for (MSpan* s : big) mheap.free_span(s);
    for (MSpan* s : kept) mheap.free_span(s);
    ga_heap_validate();
}

// Go 1.19: an allocation that grows the heap while Ready memory is over
// the collector's retention goal releases as much as it grew (capped at the
// excess), so growing around fragments does not grow the resident set; an
// allocation that does not grow the heap releases nothing.
TEST(MHeap, AGrowthBeyondTheRetentionGoalReleasesAsMuchAsItGrew) {
    std::vector<MSpan*> kept = MakeHoles();
    const std::uint64_t scav0 = mheap.scavenged_assist_bytes.load();
    std::vector<MSpan*> big;
    // 32-page spans fit only in the free Prepared tail of the last growth
    // (the holes are 16 pages; scavenged ones count as Prepared too): take
    // the tail, checking that no allocation grew the heap.
    auto take_tail = [&](std::size_t prepared_holes) {
        const std::size_t n = (mheap.pages.scav_pages() - prepared_holes) / 32;
        const std::uint64_t m0 = Mapped();
        for (std::size_t i = 0; i < n; i++) {
            MSpan* s = mheap.alloc_span(32, 0, SpanKind::Malloc);
            ASSERT_NE(s, nullptr);
            mheap.maybe_pay_scavenge_owed();
            big.push_back(s);
        }
        ASSERT_EQ(Mapped(), m0) << "the tail was smaller than counted";
    };
    // With Ready memory over the goal but no growth, nothing is released.
    mheap.scavenge_growth_goal.store(MHeap::retained() - 2 * MiB);
    MSpan* s = mheap.alloc_span(16, 0, SpanKind::Malloc);  // into a hole
    ASSERT_NE(s, nullptr);
    mheap.maybe_pay_scavenge_owed();
    big.push_back(s);
    take_tail(0);
    EXPECT_EQ(mheap.scavenged_assist_bytes.load(), scav0) << "released without a growth";
    EXPECT_EQ(FreeReadyPages(), 31u * 16u);
    // The next span grows the heap by 4 MiB. With the goal 3 MiB above Ready
    // memory after it, Ready + growth is 1 MiB over: that much is released
    // (min(growth, excess), Go's rule), from the holes.
    std::uint64_t m0 = Mapped();
    mheap.scavenge_growth_goal.store(MHeap::retained() + 32 * kPageSize + 3 * MiB);
    s = mheap.alloc_span(32, 0, SpanKind::Malloc);
    ASSERT_NE(s, nullptr);
    mheap.maybe_pay_scavenge_owed();
    big.push_back(s);
    ASSERT_EQ(Mapped() - m0, 4 * MiB) << "the heap grows by kHeapGrowBytes";
    EXPECT_EQ(mheap.scavenged_assist_bytes.load() - scav0, 1 * MiB);
    EXPECT_EQ(FreeReadyPages(), 31u * 16u - MiB / kPageSize);
    // A growth with Ready memory well over the goal releases as much as the
    // growth (4 MiB), capped by what is free: the holes left (2.875 MiB).
    mheap.scavenge_growth_goal.store(MiB);
    take_tail(MiB / kPageSize);
    EXPECT_EQ(mheap.scavenged_assist_bytes.load() - scav0, 1 * MiB) << "released without a growth";
    m0 = Mapped();
    s = mheap.alloc_span(32, 0, SpanKind::Malloc);
    ASSERT_NE(s, nullptr);
    mheap.maybe_pay_scavenge_owed();
    big.push_back(s);
    mheap.scavenge_growth_goal.store(UINT64_MAX);
    EXPECT_GT(Mapped(), m0);
    EXPECT_EQ(mheap.scavenged_assist_bytes.load() - scav0, 31 * 16 * kPageSize);
    EXPECT_EQ(FreeReadyPages(), 0u);
    EXPECT_EQ(mheap.scavenge_owed.load(), 0u) << "a debt nothing can pay is dropped";
    for (MSpan* b : big) mheap.free_span(b);
    for (MSpan* k : kept) mheap.free_span(k);
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
