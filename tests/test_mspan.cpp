// Spans alone: geometry of every size class, Go's magic division for every
// offset, allocBits tail bits, and draining of remote frees (including the
// double free it must catch).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "mspan.h"

using namespace goalloc;

namespace {
constexpr std::uintptr_t kBase = std::uintptr_t{0x200000} << 26;

// A span record with its bitmap block (the mheap's fixallocs in real use).
struct TestSpan : MSpan {
    alignas(64) std::atomic<std::uint64_t> block[3 * kMaxBitmapWords];
};

std::unique_ptr<TestSpan> MakeSpan(int sc, SpanKind kind = SpanKind::Malloc) {
    auto s = std::make_unique<TestSpan>();
    std::uint32_t np = sc ? class_to_allocnpages[sc] : 3;
    EXPECT_LE(MSpan::bitmap_words(np, sc), kMaxBitmapWords);
    for (auto& w : s->block) w.store(~std::uint64_t{0});  // init must not rely on zeroed blocks
    s->init(kBase, np, sc, kind, 0, s->block);
    return s;
}
void SetAlloc(MSpan* s, std::uint32_t idx) {
    s->allocBits[idx / 64].fetch_or(std::uint64_t{1} << (idx % 64));
}
}  // namespace

TEST(MSpan, GeometryMatchesTheSizeClassForEveryClass) {
    for (int sc = 1; sc < kNumSizeClasses; sc++) {
        auto s = MakeSpan(sc);
        std::size_t bytes = std::size_t{class_to_allocnpages[sc]} * kPageSize;
        EXPECT_EQ(s->elemsize, class_to_size[sc]);
        EXPECT_EQ(s->nelems, bytes / class_to_size[sc]) << sc;
        EXPECT_EQ(s->nwords, (s->nelems + 63) / 64);
        EXPECT_LE(s->limit, kBase + bytes);
        EXPECT_EQ(s->spanclass, make_spanclass(sc, true));
        EXPECT_EQ(s->count_alloc(), 0u);
        // Tail bits are set in both bitmaps, and only the tail.
        auto c = MakeSpan(sc, SpanKind::Collected);
        EXPECT_EQ(s->gcmarkBits, nullptr) << "malloc spans have no mark bits";
        for (std::uint32_t i = 0; i < s->nwords * 64u; i++) {
            bool bit = (s->allocBits[i / 64].load() >> (i % 64)) & 1;
            bool cbit = (c->allocBits[i / 64].load() >> (i % 64)) & 1;
            bool mark = (c->gcmarkBits[i / 64].load() >> (i % 64)) & 1;
            ASSERT_EQ(bit, i >= s->nelems) << "class " << sc << " bit " << i;
            ASSERT_EQ(cbit, i >= s->nelems);
            ASSERT_EQ(mark, i >= s->nelems);
            ASSERT_EQ(s->remoteBits[i / 64].load(), 0u);
            ASSERT_EQ(c->remoteBits[i / 64].load(), 0u);
        }
    }
}

// The bitmaps of a span's block do not overlap and stay inside the block;
// a malloc span's remoteBits (RMW by other threads) share no cache line with
// its allocBits.
TEST(MSpan, BitmapsTileTheirBlockAndRemoteFreesHaveTheirOwnLine) {
    for (int sc = 0; sc < kNumSizeClasses; sc++) {
        for (SpanKind k : {SpanKind::Malloc, SpanKind::Collected}) {
            auto s = MakeSpan(sc, k);
            auto lo = reinterpret_cast<std::uintptr_t>(s->bitBlock);
            auto hi = lo + MSpan::bitmap_block_bytes(k, s->nwords);
            std::size_t len = s->nwords * 8u;
            // Small remote bitmaps live in the record, beside remoteCount.
            bool inline_remote = s->nwords <= MSpan::kInlineRemoteWords;
            EXPECT_EQ(s->remoteBits == s->remoteInline, inline_remote) << "class " << sc;
            std::vector<std::uintptr_t> starts{reinterpret_cast<std::uintptr_t>(s->allocBits)};
            if (!inline_remote) starts.push_back(reinterpret_cast<std::uintptr_t>(s->remoteBits));
            if (k == SpanKind::Collected) starts.push_back(reinterpret_cast<std::uintptr_t>(s->gcmarkBits));
            std::sort(starts.begin(), starts.end());
            for (std::size_t i = 0; i < starts.size(); i++) {
                ASSERT_GE(starts[i], lo) << "class " << sc;
                ASSERT_LE(starts[i] + len, hi) << "class " << sc;
                if (i + 1 < starts.size()) {
                    ASSERT_LE(starts[i] + len, starts[i + 1]) << "class " << sc;
                }
            }
            if (k == SpanKind::Malloc && !inline_remote) {
                auto a = reinterpret_cast<std::uintptr_t>(s->allocBits);
                auto r = reinterpret_cast<std::uintptr_t>(s->remoteBits);
                EXPECT_EQ(r % 64, 0u);
                EXPECT_GE(r, (a + len + 63) & ~std::uintptr_t{63}) << "class " << sc;
                EXPECT_EQ(MSpan::bitmap_block_bytes(k, s->nwords) % 64, 0u);
            }
        }
    }
}

TEST(MSpan, MagicDivisionIsExactForEveryOffsetOfEveryClass) {
    for (int sc = 1; sc < kNumSizeClasses; sc++) {
        auto s = MakeSpan(sc);
        std::uintptr_t bytes = std::uintptr_t{s->npages} * kPageSize;
        for (std::uintptr_t off = 0; off < bytes; off++)
            ASSERT_EQ(s->index_of(kBase + off), off / s->elemsize) << "class " << sc << " offset " << off;
    }
}

TEST(MSpan, LargeSpanHasOneObjectAndOnlyItsBaseIsAnObjectStart) {
    auto s = MakeSpan(0);
    EXPECT_EQ(s->nelems, 1u);
    EXPECT_EQ(s->elemsize, 3 * kPageSize);
    EXPECT_EQ(s->index_of(kBase + 5000), 0u);
    EXPECT_NE(s->object_base(s->index_of(kBase + 5000)), kBase + 5000);
    EXPECT_EQ(s->object_base(0), kBase);
}

TEST(MSpan, DrainAppliesRemoteFreesToAllocBits) {
    auto s = MakeSpan(5);  // 48 B, 170 objects
    for (std::uint32_t i = 0; i < 100; i++) SetAlloc(s.get(), i);
    EXPECT_EQ(s->count_alloc(), 100u);
    for (std::uint32_t i : {3u, 64u, 99u}) {
        s->remoteCount.fetch_add(1);
        s->remoteBits[i / 64].fetch_or(std::uint64_t{1} << (i % 64));
    }
    EXPECT_EQ(s->count_remote(), 3u);
    EXPECT_EQ(s->drain_remote(), 3u);
    EXPECT_EQ(s->count_alloc(), 97u);
    EXPECT_EQ(s->remoteCount.load(), 0u);
    EXPECT_EQ(s->count_remote(), 0u);
    EXPECT_FALSE(s->is_allocated(64));
    EXPECT_TRUE(s->is_allocated(65));
    EXPECT_EQ(s->drain_remote(), 0u);
}

TEST(MSpanDeathTest, DrainCatchesARemoteFreeOfAFreeObject) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    auto s = MakeSpan(5);
    SetAlloc(s.get(), 1);
    s->remoteCount.fetch_add(1);
    s->remoteBits[0].fetch_or(std::uint64_t{1} << 2);  // object 2 was never allocated
    char want[128];
    std::snprintf(want, sizeof want, "double free of 0x%lx", static_cast<unsigned long>(kBase + 2 * 48));
    EXPECT_DEATH(s->drain_remote(), want);
}
