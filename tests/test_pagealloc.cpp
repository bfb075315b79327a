// Page allocator alone, over made-up arena records (it never touches the
// memory it manages): bitmap helpers against naive references, summaries,
// address-ordered first fit, coalescing, runs across contiguous arenas,
// scavenged-state accounting, and a randomized comparison with a naive model.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "pagealloc.h"

using namespace goalloc;

namespace {

constexpr std::uintptr_t kFakeBase = std::uintptr_t{0x100000} << 26;  // arena-aligned, never mapped

struct FakeHeap {
    PageAlloc pa;
    std::vector<std::unique_ptr<HeapArena>> arenas;
    HeapArena* add(std::size_t index) {  // arena number `index` from kFakeBase
        auto a = std::make_unique<HeapArena>();
        a->base = kFakeBase + index * kArenaBytes;
        EXPECT_TRUE(pa.add_arena(a.get()));
        arenas.push_back(std::move(a));
        return arenas.back().get();
    }
    std::uintptr_t page(std::size_t arena, std::size_t pg) const {
        return kFakeBase + arena * kArenaBytes + pg * kPageSize;
    }
    std::uintptr_t alloc(std::size_t n) {
        std::size_t scav;
        bool nz;
        return pa.alloc(n, &scav, &nz);
    }
    // One scavenger step (take_ready_high): expects the run [want, want + n
    // pages) (want 0: none), then gives it back released.
    void step(std::size_t max, std::size_t align, std::uintptr_t want, std::size_t want_n) {
        std::size_t n = ~std::size_t{0};
        std::uintptr_t got = pa.take_ready_high(max, align, &n);
        EXPECT_EQ(got, want) << "max " << max << " align " << align;
        EXPECT_EQ(n, want_n) << "max " << max << " align " << align;
        if (got != 0) pa.free_released(got, n);
    }
};

std::vector<std::uint64_t> RandomBitmap(std::mt19937_64& rng, double density, std::size_t words) {
    std::vector<std::uint64_t> b(words, 0);
    std::bernoulli_distribution bit(density);
    // Runs rather than independent bits, so long runs occur too.
    std::size_t i = 0;
    while (i < words * 64) {
        std::size_t len = 1 + rng() % 300;
        bool v = bit(rng);
        for (std::size_t k = 0; k < len && i < words * 64; k++, i++)
            if (v) b[i / 64] |= std::uint64_t{1} << (i % 64);
    }
    return b;
}

bool Bit(const std::vector<std::uint64_t>& b, std::size_t i) { return (b[i / 64] >> (i % 64)) & 1; }

}  // namespace

TEST(PageBitmap, HelpersAgreeWithNaiveScans) {
    std::mt19937_64 rng(1);
    for (int iter = 0; iter < 200; iter++) {
        auto b = RandomBitmap(rng, 0.5, kArenaBitmapWords);
        const std::size_t nbits = kPagesPerArena;
        std::size_t from = rng() % nbits;
        std::size_t ns = kNoPos, nc = kNoPos;
        for (std::size_t i = from; i < nbits; i++)
            if (Bit(b, i)) { ns = i; break; }
        for (std::size_t i = from; i < nbits; i++)
            if (!Bit(b, i)) { nc = i; break; }
        EXPECT_EQ(bitmap_next_set(b.data(), nbits, from), ns);
        EXPECT_EQ(bitmap_next_clear(b.data(), nbits, from), nc);
        std::size_t want = 1 + rng() % 400, run = kNoPos, len = 0;
        for (std::size_t i = 0; i < nbits; i++) {
            len = Bit(b, i) ? len + 1 : 0;
            if (len == want) { run = i + 1 - want; break; }
        }
        EXPECT_EQ(bitmap_find_run(b.data(), nbits, want), run) << "want " << want;
        std::size_t start = rng() % nbits, n = rng() % (nbits - start), cnt = 0;
        for (std::size_t i = start; i < start + n; i++) cnt += Bit(b, i);
        EXPECT_EQ(bitmap_count(b.data(), start, n), cnt);
        auto c = b;
        bitmap_set(c.data(), start, n);
        for (std::size_t i = 0; i < nbits; i++) ASSERT_EQ(Bit(c, i), Bit(b, i) || (i >= start && i < start + n));
        bitmap_clear(c.data(), start, n);
        for (std::size_t i = 0; i < nbits; i++) ASSERT_EQ(Bit(c, i), Bit(b, i) && !(i >= start && i < start + n));
    }
}

TEST(PageBitmap, SummaryIsStartEndAndLongestRun) {
    std::mt19937_64 rng(2);
    for (int iter = 0; iter < 300; iter++) {
        double density = iter % 3 == 0 ? 0.95 : 0.4;
        auto b = RandomBitmap(rng, density, kArenaBitmapWords);
        std::size_t start = 0, end = 0, max = 0, len = 0;
        while (start < kPagesPerArena && Bit(b, start)) start++;
        while (end < kPagesPerArena && Bit(b, kPagesPerArena - 1 - end)) end++;
        for (std::size_t i = 0; i < kPagesPerArena; i++) {
            len = Bit(b, i) ? len + 1 : 0;
            if (len > max) max = len;
        }
        PageSummary s = summarize(b.data());
        EXPECT_EQ(s.start, start);
        EXPECT_EQ(s.end, end);
        EXPECT_EQ(s.max, max);
    }
    std::vector<std::uint64_t> all(kArenaBitmapWords, ~std::uint64_t{0});
    PageSummary s = summarize(all.data());
    EXPECT_EQ(s.start, kPagesPerArena);
    EXPECT_EQ(s.end, kPagesPerArena);
    EXPECT_EQ(s.max, kPagesPerArena);
}

TEST(PageAlloc, FirstFitTakesTheLowestHoleThatFits) {
    FakeHeap h;
    h.add(0);
    h.pa.grow(h.page(0, 0), 100);
    EXPECT_EQ(h.alloc(10), h.page(0, 0));
    EXPECT_EQ(h.alloc(5), h.page(0, 10));
    h.pa.free(h.page(0, 0), 10);
    EXPECT_EQ(h.alloc(3), h.page(0, 0));   // into the hole
    EXPECT_EQ(h.alloc(8), h.page(0, 15));  // the rest of the hole (7 pages) is too small
    EXPECT_EQ(h.alloc(7), h.page(0, 3));   // exactly fills it
    EXPECT_EQ(h.pa.free_pages(), 100u - 10 - 5 - 8);
    h.pa.validate();
}

TEST(PageAlloc, FreedNeighboursCoalesce) {
    FakeHeap h;
    h.add(0);
    h.pa.grow(h.page(0, 0), 64);
    std::uintptr_t a = h.alloc(10), b = h.alloc(10), c = h.alloc(10);
    h.pa.free(a, 10);
    h.pa.free(c, 10);
    // The hole left by c joins the free tail (30..63): first fit is at c.
    EXPECT_EQ(h.alloc(25), h.page(0, 20));
    EXPECT_EQ(h.alloc(10), h.page(0, 0));   // a's hole
    h.pa.free(h.page(0, 0), 10);
    h.pa.free(h.page(0, 20), 25);
    h.pa.free(b, 10);                       // now 0..63 is one run again
    EXPECT_EQ(h.arenas[0]->sum.max, 64u);
    EXPECT_EQ(h.alloc(64), h.page(0, 0));
    EXPECT_EQ(h.alloc(1), 0u);
    h.pa.validate();
}

TEST(PageAlloc, RunsSpanContiguousArenasButNotGaps) {
    FakeHeap h;
    h.add(0);
    h.add(1);
    h.add(3);  // gap: arena 2 is not ours
    for (std::size_t a : {0, 1, 3}) h.pa.grow(h.page(a, 0), kPagesPerArena);
    // Leave 50 free pages at the end of arena 0.
    ASSERT_EQ(h.alloc(kPagesPerArena - 50), h.page(0, 0));
    // 100 pages: 50 at the end of arena 0 and 50 at the start of arena 1.
    std::uintptr_t x = h.alloc(100);
    EXPECT_EQ(x, h.page(0, kPagesPerArena - 50));
    h.pa.free(x, 100);
    // The longest run is 50 + a whole arena.
    std::uintptr_t y = h.alloc(kPagesPerArena + 50);
    EXPECT_EQ(y, h.page(0, kPagesPerArena - 50));
    h.pa.free(y, kPagesPerArena + 50);
    // One page more needs arena 3 to continue arena 1, which it does not.
    EXPECT_EQ(h.alloc(kPagesPerArena + 51), 0u);
    // A whole-arena request still first-fits across the 0 -> 1 boundary; the
    // next one only fits in arena 3.
    EXPECT_EQ(h.alloc(kPagesPerArena), h.page(0, kPagesPerArena - 50));
    EXPECT_EQ(h.alloc(kPagesPerArena), h.page(3, 0));
    h.pa.validate();
}

TEST(PageAlloc, ScavengedPagesAreReportedAndNeedNoZeroing) {
    FakeHeap h;
    h.add(0);
    h.pa.grow(h.page(0, 0), 32);
    EXPECT_EQ(h.pa.scav_pages(), 32u);
    std::size_t scav = 0;
    bool nz = true;
    std::uintptr_t a = h.pa.alloc(8, &scav, &nz);
    EXPECT_EQ(scav, 8u);   // fresh pages were Prepared
    EXPECT_FALSE(nz);      // and read as zero
    h.pa.free(a, 8);       // now Ready and dirty
    EXPECT_EQ(h.pa.scav_pages(), 24u);
    a = h.pa.alloc(4, &scav, &nz);
    EXPECT_EQ(scav, 0u);
    EXPECT_TRUE(nz);
    h.pa.free(a, 4);
    std::vector<std::pair<std::uintptr_t, std::size_t>> released;
    std::size_t n = h.pa.scavenge(~std::size_t{0}, [&](std::uintptr_t p, std::size_t bytes) {
        released.emplace_back(p, bytes);
    });
    EXPECT_EQ(n, 8u);  // only the 8 Ready free pages
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0].first, h.page(0, 0));
    EXPECT_EQ(released[0].second, 8 * kPageSize);
    EXPECT_EQ(h.pa.scav_pages(), 32u);
    EXPECT_EQ(h.pa.scavenge(~std::size_t{0}, [](std::uintptr_t, std::size_t) {}), 0u);
    h.pa.validate();
}

TEST(PageAlloc, RandomOperationsMatchANaiveFirstFitModel) {
    FakeHeap h;
    const std::size_t narenas = 3;
    for (std::size_t i = 0; i < narenas; i++) h.add(i);
    const std::size_t total = narenas * kPagesPerArena;
    h.pa.grow(h.page(0, 0), total);
    std::vector<bool> used(total, false);
    std::vector<std::pair<std::uintptr_t, std::size_t>> live;
    std::mt19937_64 rng(3);
    for (int op = 0; op < 4000; op++) {
        if (live.empty() || rng() % 100 < 55) {
            std::size_t n = rng() % 10 == 0 ? 1 + rng() % 3000 : 1 + rng() % 40;
            std::size_t want = kNoPos, len = 0;
            for (std::size_t i = 0; i < total; i++) {
                len = used[i] ? 0 : len + 1;
                if (len == n) { want = i + 1 - n; break; }
            }
            std::uintptr_t got = h.alloc(n);
            if (want == kNoPos) {
                ASSERT_EQ(got, 0u);
                continue;
            }
            ASSERT_EQ(got, h.page(0, 0) + want * kPageSize) << "op " << op << " n " << n;
            for (std::size_t i = want; i < want + n; i++) used[i] = true;
            live.emplace_back(got, n);
        } else {
            std::size_t k = rng() % live.size();
            auto [p, n] = live[k];
            live[k] = live.back();
            live.pop_back();
            h.pa.free(p, n);
            std::size_t first = (p - h.page(0, 0)) / kPageSize;
            for (std::size_t i = first; i < first + n; i++) used[i] = false;
        }
        if (op % 500 == 0) h.pa.validate();
    }
    std::size_t nfree = 0;
    for (bool u : used) nfree += !u;
    EXPECT_EQ(h.pa.free_pages(), nfree);
    h.pa.validate();
}

// The background scavenger's step: the highest run of free Ready pages, its
// top end, up to the maximum asked; Prepared pages and pages in use are
// skipped; what comes back is free and Prepared, and reads as zero when
// allocated again.
TEST(PageAlloc, TakeReadyHighTakesTheTopOfTheHighestReadyRun) {
    FakeHeap h;
    h.add(0);
    h.add(1);
    h.pa.grow(h.page(0, 0), 2 * kPagesPerArena);
    // Make pages [0, 300) of arena 0 and [10, 20) of arena 1 Ready-and-free,
    // with page 15 of arena 1 in use.
    std::uintptr_t a = h.alloc(kPagesPerArena + 20);
    ASSERT_EQ(a, h.page(0, 0));
    h.pa.free(h.page(0, 0), 300);
    h.pa.free(h.page(1, 10), 5);
    h.pa.free(h.page(1, 16), 4);
    const std::size_t free0 = h.pa.free_pages(), scav0 = h.pa.scav_pages();
    std::size_t n = 0;
    // Highest: arena 1's [16, 20), all four of it (max 8).
    EXPECT_EQ(h.pa.take_ready_high(8, 1, &n), h.page(1, 16));
    EXPECT_EQ(n, 4u);
    EXPECT_EQ(h.pa.free_pages(), free0 - 4);
    h.pa.free_released(h.page(1, 16), 4);
    EXPECT_EQ(h.pa.free_pages(), free0);
    EXPECT_EQ(h.pa.scav_pages(), scav0 + 4);
    // Then [10, 15), its top 3 pages when 3 are asked for.
    h.step(3, 1, h.page(1, 12), 3);
    h.step(8, 1, h.page(1, 10), 2);
    // Then arena 0's run, from its top, across bitmap words.
    h.step(100, 1, h.page(0, 200), 100);
    h.pa.validate();
    // Released pages come back as Prepared: no zeroing needed; the rest of
    // the run [0, 200) is still dirty.
    std::size_t scav = 0;
    bool nz = true;
    EXPECT_EQ(h.pa.alloc_at(h.page(0, 200), 100, &scav, &nz), true);
    EXPECT_EQ(scav, 100u);
    EXPECT_FALSE(nz);
    EXPECT_EQ(h.pa.alloc_at(h.page(0, 150), 10, &scav, &nz), true);
    EXPECT_EQ(scav, 0u);
    EXPECT_TRUE(nz);
    h.pa.validate();
    // Nothing Ready and free left but [0, 150) and [160, 200).
    h.step(1000, 1, h.page(0, 160), 40);
    h.step(1000, 1, h.page(0, 0), 150);
    h.step(1000, 1, 0, 0);
    h.pa.validate();
}

// With huge pages the step takes only a whole aligned block of free Ready
// pages (256 pages, 2 MiB), so that releasing it breaks no huge page.
TEST(PageAlloc, TakeReadyHighWithAlignmentTakesOnlyWholeAlignedBlocks) {
    FakeHeap h;
    h.add(0);
    h.pa.grow(h.page(0, 0), kPagesPerArena);
    ASSERT_EQ(h.alloc(kPagesPerArena), h.page(0, 0));
    // 400 free Ready pages from 100: no aligned block of 256 inside.
    h.pa.free(h.page(0, 100), 400);
    h.step(1024, 256, 0, 0);
    h.step(255, 256, 0, 0);  // a maximum below the alignment takes nothing
    // Pages [500, 1024) free too: [512, 768) and [768, 1024) are whole blocks.
    h.pa.free(h.page(0, 500), 524);
    h.step(1024, 256, h.page(0, 768), 256);
    h.step(1024, 256, h.page(0, 512), 256);
    // [256, 512) is whole now (the two frees meet at 500); [0, 256) is not
    // (pages 0-99 in use).
    h.step(1024, 256, h.page(0, 256), 256);
    h.step(1024, 256, 0, 0);
    h.pa.validate();
    EXPECT_EQ(h.pa.scav_pages(), 768u);
    // Page-sized steps still find [100, 256).
    h.step(1024, 1, h.page(0, 100), 156);
}

// Random allocations, frees and scavenger steps against a naive model of
// each page's state (in use, free Ready, free Prepared).
TEST(PageAlloc, ScavengerStepsMatchANaiveModel) {
    FakeHeap h;
    const std::size_t narenas = 2;
    for (std::size_t i = 0; i < narenas; i++) h.add(i);
    const std::size_t total = narenas * kPagesPerArena;
    h.pa.grow(h.page(0, 0), total);
    enum St : std::uint8_t { kUsed, kReady, kPrepared };
    std::vector<St> st(total, kPrepared);
    std::vector<std::pair<std::uintptr_t, std::size_t>> live;
    std::mt19937_64 rng(4);
    auto idx = [&](std::uintptr_t p) { return (p - h.page(0, 0)) / kPageSize; };
    for (int op = 0; op < 3000; op++) {
        unsigned r = rng() % 100;
        if (live.empty() || r < 45) {
            std::size_t n = 1 + rng() % 64;
            std::size_t scav = 0;
            bool nz = false;
            std::uintptr_t got = h.pa.alloc(n, &scav, &nz);
            if (got == 0) continue;
            std::size_t i0 = idx(got), want_scav = 0;
            bool want_dirty = false;
            for (std::size_t i = i0; i < i0 + n; i++) {
                ASSERT_NE(st[i], kUsed) << "op " << op;
                want_scav += st[i] == kPrepared;
                want_dirty |= st[i] == kReady;
                st[i] = kUsed;
            }
            ASSERT_EQ(scav, want_scav) << "op " << op;
            ASSERT_EQ(nz, want_dirty) << "op " << op;
            live.emplace_back(got, n);
        } else if (r < 85) {
            std::size_t k = rng() % live.size();
            auto [p, n] = live[k];
            live[k] = live.back();
            live.pop_back();
            h.pa.free(p, n);
            for (std::size_t i = idx(p); i < idx(p) + n; i++) st[i] = kReady;
        } else {
            const std::size_t max = 1 + rng() % 16;
            // The model: the highest Ready page, and the run below it, up to max.
            std::size_t top = total;
            while (top > 0 && st[top - 1] != kReady) top--;
            std::size_t lo = top;
            while (lo > 0 && top - lo < max && st[lo - 1] == kReady &&
                   (lo - 1) / kPagesPerArena == (top - 1) / kPagesPerArena)
                lo--;
            std::size_t n = 0;
            std::uintptr_t got = h.pa.take_ready_high(max, 1, &n);
            if (top == 0) {
                ASSERT_EQ(got, 0u) << "op " << op;
                continue;
            }
            ASSERT_EQ(got, h.page(0, 0) + lo * kPageSize) << "op " << op;
            ASSERT_EQ(n, top - lo) << "op " << op;
            h.pa.free_released(got, n);
            for (std::size_t i = lo; i < top; i++) st[i] = kPrepared;
        }
        if (op % 300 == 0) h.pa.validate();
    }
    std::size_t nfree = 0, nscav = 0;
    for (St s : st) {
        nfree += s != kUsed;
        nscav += s == kPrepared;
    }
    EXPECT_EQ(h.pa.free_pages(), nfree);
    EXPECT_EQ(h.pa.scav_pages(), nscav);
    h.pa.validate();
}
