// The C API's functional contract (include/goalloc/goalloc.h), single-threaded:
// sizes and size classes, alignment, zeroing, realloc, errno on failure.
#include "testutil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

namespace {

using namespace gatest;
using goalloc::class_to_size;
using goalloc::kMaxSmallSize;
using goalloc::kNumSizeClasses;
using goalloc::kPageSize;

// Calls `alloc`, which must fail: returns true if it returned NULL with errno == want.
template <typename F>
::testing::AssertionResult FailsWithErrno(F alloc, int want) {
    errno = 0;
    void* p = alloc();
    int err = errno;
    if (p != nullptr) {
        ga_free(p);
        return ::testing::AssertionFailure() << "returned " << p << " instead of NULL";
    }
    if (err != want)
        return ::testing::AssertionFailure()
               << "errno " << err << " (" << std::strerror(err) << "), want " << want;
    return ::testing::AssertionSuccess();
}

// Writes a pattern through the whole usable size and checks it reads back.
void ExpectWholeObjectWritable(void* p, std::size_t usable) {
    std::uint64_t key = PatternKey(p, usable, 7);
    FillPattern(p, usable, key);
    EXPECT_EQ(FirstPatternMismatch(p, usable, key), usable) << "object " << p;
}

// A representative set of large (> 32 KiB) request sizes.
const std::size_t kLargeSizes[] = {kMaxSmallSize + 1, 40000,       64 * KiB - 1, 64 * KiB,
                                   64 * KiB + 1,      100 * KiB,   1 * MiB,      1 * MiB + 1,
                                   3 * MiB + 12345,   16 * MiB + 8};

// ---------------------------------------------------------------- malloc / sizes

TEST(Api, MallocZeroReturnsDistinctNonNullObjectsOfTheSmallestClass) {
    std::set<void*> seen;
    std::vector<void*> ptrs;
    for (int i = 0; i < 1000; i++) {
        void* p = ga_malloc(0);
        ASSERT_NE(p, nullptr) << "malloc(0) #" << i;
        EXPECT_TRUE(seen.insert(p).second) << "malloc(0) handed out " << p << " twice";
        EXPECT_EQ(ga_usable_size(p), class_to_size[1]);
        EXPECT_EQ(ga_usable_size(p), ClassSizeOf(0));
        ptrs.push_back(p);
    }
    for (void* p : ptrs) ga_free(p);
}

TEST(Api, UsableSizeIsGoSizeClassForEveryRequestUpTo32K) {
    // The tables map every request to the smallest class that holds it; check
    // that first so that a broken table cannot make this test vacuous.
    ASSERT_EQ(kNumSizeClasses, 68);
    for (std::size_t n = 1; n <= kMaxSmallSize; n++) {
        int c = SizeClassOf(n);
        ASSERT_GE(class_to_size[c], n);
        ASSERT_TRUE(c == 1 || class_to_size[c - 1] < n) << n;
    }
    std::size_t mismatches = 0;
    for (std::size_t n = 0; n <= kMaxSmallSize; n++) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr) << "ga_malloc(" << n << ")";
        std::size_t got = ga_usable_size(p);
        if (got != ClassSizeOf(n) && ++mismatches <= 20)
            ADD_FAILURE() << "ga_usable_size(ga_malloc(" << n << ")) = " << got << ", want "
                          << ClassSizeOf(n) << " (class " << SizeClassOf(n) << ")";
        // The first and the last usable byte belong to the caller.
        static_cast<unsigned char*>(p)[0] = 0x5A;
        static_cast<unsigned char*>(p)[got - 1] = 0xA5;
        ga_free(p);
    }
    EXPECT_EQ(mismatches, 0u);
}

TEST(Api, EveryClassSizeRequestedExactlyHasThatUsableSize) {
    for (int c = 1; c < kNumSizeClasses; c++) {
        void* p = ga_malloc(class_to_size[c]);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(ga_usable_size(p), class_to_size[c]) << "class " << c;
        ga_free(p);
    }
}

TEST(Api, LargeObjectsAreWholePagesAtLeastTheRequest) {
    for (std::size_t n : kLargeSizes) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr) << n;
        std::size_t u = ga_usable_size(p);
        EXPECT_GE(u, n);
        EXPECT_EQ(u % kPageSize, 0u) << "usable size " << u << " of a " << n << "-byte request";
        ExpectWholeObjectWritable(p, u);
        ga_free(p);
    }
}

TEST(Api, ObjectsAreAtLeastEightByteAligned) {
    std::vector<void*> ptrs;
    for (std::size_t n = 0; n <= 4096; n += 1) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(IsAligned(p, 8)) << p << " for " << n << " bytes";
        ptrs.push_back(p);
    }
    for (std::size_t n : kLargeSizes) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(IsAligned(p, 8)) << p << " for " << n << " bytes";
        ptrs.push_back(p);
    }
    for (void* p : ptrs) ga_free(p);
}

TEST(Api, PowerOfTwoClassObjectsAreAlignedToTheirSizeUpToAPage) {
    int classes_checked = 0;
    for (int c = 1; c < kNumSizeClasses; c++) {
        std::size_t size = class_to_size[c];
        if ((size & (size - 1)) != 0) continue;
        std::size_t want = std::min<std::size_t>(size, kPageSize);
        // Enough objects to cross into a second span for the small classes.
        std::size_t count = std::min<std::size_t>(2 * kPageSize / size + 2, 64);
        std::vector<void*> ptrs;
        for (std::size_t i = 0; i < count; i++) {
            void* p = ga_malloc(size);
            ASSERT_NE(p, nullptr);
            EXPECT_TRUE(IsAligned(p, want)) << p << ": class " << c << " (" << size << " bytes)";
            ptrs.push_back(p);
        }
        for (void* p : ptrs) ga_free(p);
        classes_checked++;
    }
    EXPECT_EQ(classes_checked, 13);  // 8, 16, 32, ..., 8192, 16384, 32768
}

TEST(Api, EveryClassObjectIsAlignedToTheLargestPowerOfTwoDividingItsSize) {
    // Go's layout (span base page-aligned, objects at base + k * size) gives
    // every object the "min align" column of sizeclasses.h.
    for (int c = 1; c < kNumSizeClasses; c++) {
        std::size_t size = class_to_size[c];
        std::size_t want = ClassMinAlign(c);
        std::vector<void*> ptrs;
        for (int i = 0; i < 24; i++) {
            void* p = ga_malloc(size);
            ASSERT_NE(p, nullptr);
            EXPECT_TRUE(IsAligned(p, want))
                << p << ": class " << c << " (" << size << " bytes) wants " << want;
            ptrs.push_back(p);
        }
        for (void* p : ptrs) ga_free(p);
    }
}

TEST(Api, LiveObjectsNeverOverlap) {
    Rng rng(42);
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;  // [begin, end)
    std::vector<void*> ptrs;
    for (int i = 0; i < 5000; i++) {
        std::size_t n = rng.Percent(95) ? rng.Range(0, 2048) : rng.Range(2049, 200 * KiB);
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        ranges.emplace_back(Addr(p), Addr(p) + ga_usable_size(p));
        ptrs.push_back(p);
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); i++)
        EXPECT_LE(ranges[i - 1].second, ranges[i].first)
            << "objects at 0x" << std::hex << ranges[i - 1].first << " and 0x" << ranges[i].first
            << " overlap";
    for (void* p : ptrs) ga_free(p);
}

// ---------------------------------------------------------------- calloc

TEST(Api, CallocReturnsZeroedMemory) {
    const std::size_t sizes[] = {1, 7, 8, 24, 100, 1000, 1024, 1025, 4096, 10000, 32768, 32769,
                                 100 * KiB, 1 * MiB};
    for (std::size_t n : sizes) {
        void* p = ga_calloc(1, n);
        ASSERT_NE(p, nullptr) << n;
        EXPECT_EQ(FirstNonZero(p, n), n) << "calloc(1, " << n << ")";
        ga_free(p);
        p = ga_calloc(n, 3);
        ASSERT_NE(p, nullptr) << n;
        EXPECT_EQ(FirstNonZero(p, 3 * n), 3 * n) << "calloc(" << n << ", 3)";
        ga_free(p);
    }
}

// Dirties `count` objects of `size` bytes (their whole usable size), frees
// them, then callocs `count` objects of the same size several times: the freed
// memory is handed out again and must come back zeroed.
void ExpectCallocZeroesReusedMemory(std::size_t size, int count, int rounds) {
    for (int round = 0; round < rounds; round++) {
        std::vector<void*> dirty;
        for (int i = 0; i < count; i++) {
            void* p = ga_malloc(size);
            ASSERT_NE(p, nullptr);
            std::memset(p, 0xAA, ga_usable_size(p));
            dirty.push_back(p);
        }
        std::set<void*> freed(dirty.begin(), dirty.end());
        for (void* p : dirty) ga_free(p);
        int reused = 0;
        std::vector<void*> clean;
        for (int i = 0; i < count; i++) {
            void* p = ga_calloc(1, size);
            ASSERT_NE(p, nullptr);
            reused += freed.count(p) != 0;
            EXPECT_EQ(FirstNonZero(p, size), size)
                << "calloc(1, " << size << ") = " << p << " (round " << round << ")";
            clean.push_back(p);
        }
        for (void* p : clean) ga_free(p);
        // Not a requirement, but without reuse this test proves nothing.
        if (round == 0 && reused == 0)
            std::printf("note: calloc(%zu) reused none of the freed objects\n", size);
    }
}

TEST(Api, CallocZeroesReusedSmallObjects) {
    for (int c = 1; c < kNumSizeClasses; c++)
        ExpectCallocZeroesReusedMemory(class_to_size[c], 32, 3);
    ExpectCallocZeroesReusedMemory(100, 500, 3);
}

TEST(Api, CallocZeroesReusedLargeObjects) {
    for (std::size_t n : {kMaxSmallSize + 1, std::size_t{64 * KiB}, std::size_t{1 * MiB}})
        ExpectCallocZeroesReusedMemory(n, 8, 3);
}

TEST(Api, CallocSizeOverflowFailsWithEnomem) {
    EXPECT_TRUE(FailsWithErrno([] { return ga_calloc(SIZE_MAX / 2 + 1, 2); }, ENOMEM));
    EXPECT_TRUE(FailsWithErrno([] { return ga_calloc(2, SIZE_MAX / 2 + 1); }, ENOMEM));
    EXPECT_TRUE(FailsWithErrno([] { return ga_calloc(std::size_t{1} << 33, std::size_t{1} << 33); },
                               ENOMEM));
    EXPECT_TRUE(FailsWithErrno([] { return ga_calloc(SIZE_MAX, SIZE_MAX); }, ENOMEM));
    // A product that fits in 64 bits but is still absurd.
    EXPECT_TRUE(FailsWithErrno([] { return ga_calloc(std::size_t{1} << 25, std::size_t{1} << 25); },
                               ENOMEM));
}

// ---------------------------------------------------------------- realloc

TEST(Api, ReallocOfNullActsAsMalloc) {
    ga_stats_t before = QuietStats();
    void* p = ga_realloc(nullptr, 100);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ga_usable_size(p), ClassSizeOf(100));
    ga_stats_t after = QuietStats();
    EXPECT_EQ(after.live_objects, before.live_objects + 1);
    ga_free(p);

    void* q = ga_realloc(nullptr, 100 * KiB);
    ASSERT_NE(q, nullptr);
    EXPECT_GE(ga_usable_size(q), 100 * KiB);
    ga_free(q);
    EXPECT_EQ(QuietStats().live_objects, before.live_objects);
}

// Allocates `from` bytes, fills them, reallocs to `to` and checks the common
// prefix survived and the new object is big enough and writable. A small
// result has the usable size of a fresh `to`-byte request, unless realloc kept
// the object in place (a shrink, say) with its old usable size.
void ExpectReallocPreservesContents(std::size_t from, std::size_t to) {
    SCOPED_TRACE(::testing::Message() << "realloc " << from << " -> " << to);
    void* p = ga_malloc(from);
    ASSERT_NE(p, nullptr);
    const std::size_t old_usable = ga_usable_size(p);
    std::uint64_t key = PatternKey(p, from, 99);
    FillPattern(p, from, key);
    void* q = ga_realloc(p, to);
    ASSERT_NE(q, nullptr);
    std::size_t keep = std::min(from, to);
    EXPECT_EQ(FirstPatternMismatch(q, keep, key), keep);
    std::size_t u = ga_usable_size(q);
    EXPECT_GE(u, to);
    if (to <= kMaxSmallSize) {
        EXPECT_TRUE(u == ClassSizeOf(to) || (q == p && u == old_usable))
            << "usable size " << u << " (was " << old_usable << ", "
            << (q == p ? "kept in place)" : "moved)");
    } else {
        EXPECT_EQ(u % kPageSize, 0u) << "a large object is whole pages";
    }
    ExpectWholeObjectWritable(q, u);
    ga_free(q);
}

TEST(Api, ReallocSmallToSmallPreservesContents) {
    const std::pair<std::size_t, std::size_t> cases[] = {
        {1, 2},     {8, 9},      {24, 16},  {100, 100}, {100, 101}, {100, 1000},
        {1000, 10}, {1024, 1025}, {5000, 32768}, {32768, 1}, {48, 47},  {47, 48}};
    for (auto [from, to] : cases) ExpectReallocPreservesContents(from, to);
}

TEST(Api, ReallocSmallToLargePreservesContents) {
    for (std::size_t from : {1, 100, 4096, 32768})
        for (std::size_t to : {kMaxSmallSize + 1, std::size_t{200 * KiB}, std::size_t{4 * MiB}})
            ExpectReallocPreservesContents(from, to);
}

TEST(Api, ReallocLargeToSmallPreservesContents) {
    for (std::size_t from : {kMaxSmallSize + 1, std::size_t{200 * KiB}, std::size_t{4 * MiB}})
        for (std::size_t to : {1, 100, 4096, 32768}) ExpectReallocPreservesContents(from, to);
}

TEST(Api, ReallocLargeToLargePreservesContents) {
    const std::pair<std::size_t, std::size_t> cases[] = {
        {40 * KiB, 48 * KiB},   {40 * KiB, 40 * KiB + 1}, {1 * MiB, 8 * MiB},
        {8 * MiB, 1 * MiB},     {100 * KiB, 100 * KiB},   {64 * KiB, 33 * KiB}};
    for (auto [from, to] : cases) ExpectReallocPreservesContents(from, to);
}

TEST(Api, ReallocGrowingStepByStepKeepsEveryByte) {
    std::size_t n = 1;
    void* p = ga_malloc(n);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, n);
    unsigned char next = 2;
    while (n < 2 * MiB) {
        std::size_t m = n + n / 2 + 1;
        p = ga_realloc(p, m);
        ASSERT_NE(p, nullptr);
        unsigned char* b = static_cast<unsigned char*>(p);
        // Byte i was written as 1 + (the step that added it).
        std::memset(b + n, next, m - n);
        n = m;
        next = static_cast<unsigned char>(next == 255 ? 2 : next + 1);
    }
    // Re-derive the expected bytes.
    std::vector<unsigned char> want;
    want.push_back(1);
    unsigned char v = 2;
    for (std::size_t k = 1; k < n;) {
        std::size_t m = k + k / 2 + 1;
        want.insert(want.end(), m - k, v);
        k = m;
        v = static_cast<unsigned char>(v == 255 ? 2 : v + 1);
    }
    ASSERT_EQ(want.size(), n);
    EXPECT_EQ(std::memcmp(p, want.data(), n), 0);
    ga_free(p);
}

TEST(Api, ReallocToZeroFreesAndReturnsNull) {
    for (std::size_t n : {std::size_t{16}, std::size_t{5000}, std::size_t{1 * MiB}}) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        std::size_t usable = ga_usable_size(p);
        ga_stats_t before = QuietStats();
        EXPECT_EQ(ga_realloc(p, 0), nullptr) << n;
        ga_stats_t after = QuietStats();
        EXPECT_EQ(after.live_objects + 1, before.live_objects) << "realloc(p, 0) of " << n;
        EXPECT_EQ(after.frees, before.frees + 1) << n;
        EXPECT_EQ(after.bytes_in_use + usable, before.bytes_in_use) << n;
    }
}

TEST(Api, FailedReallocLeavesTheOriginalObjectIntact) {
    for (std::size_t n : {std::size_t{100}, std::size_t{100 * KiB}}) {
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        std::size_t usable = ga_usable_size(p);
        std::uint64_t key = PatternKey(p, n, 3);
        FillPattern(p, n, key);
        EXPECT_TRUE(FailsWithErrno([p] { return ga_realloc(p, SIZE_MAX); }, ENOMEM));
        EXPECT_TRUE(FailsWithErrno([p] { return ga_realloc(p, std::size_t{1} << 50); }, ENOMEM));
        EXPECT_EQ(FirstPatternMismatch(p, n, key), n);
        EXPECT_EQ(ga_usable_size(p), usable);
        ga_free(p);  // still a live object: this must not be reported as misuse
    }
}

// ---------------------------------------------------------------- failures

TEST(Api, AbsurdSizesFailWithEnomem) {
    for (std::size_t n : {SIZE_MAX, SIZE_MAX - 8191, SIZE_MAX / 2, SIZE_MAX / 2 + 1,
                          std::size_t{1} << 50, std::size_t{1} << 47}) {
        EXPECT_TRUE(FailsWithErrno([n] { return ga_malloc(n); }, ENOMEM)) << "malloc(" << n << ")";
        EXPECT_TRUE(FailsWithErrno([n] { return ga_calloc(1, n); }, ENOMEM)) << "calloc(1, " << n << ")";
        EXPECT_TRUE(FailsWithErrno([n] { return ga_realloc(nullptr, n); }, ENOMEM))
            << "realloc(NULL, " << n << ")";
        EXPECT_TRUE(FailsWithErrno([n] { return ga_aligned_alloc(64, n); }, ENOMEM))
            << "aligned_alloc(64, " << n << ")";
    }
    // Size + alignment padding must not wrap around.
    EXPECT_TRUE(FailsWithErrno([] { return ga_aligned_alloc(std::size_t{1} << 22, SIZE_MAX - 100); },
                               ENOMEM));
    // The allocator still works afterwards.
    void* p = ga_malloc(64);
    ASSERT_NE(p, nullptr);
    ga_free(p);
}

// ---------------------------------------------------------------- aligned_alloc

TEST(Api, AlignedAllocHonoursEveryPowerOfTwoAlignmentUpTo4MiB) {
    ga_stats_t before = QuietStats();
    for (std::size_t align = 1; align <= 4 * MiB; align <<= 1) {
        const std::size_t sizes[] = {1, 8, 24, 100, 1000, 5000, 40000, align, align + 1, 3 * align};
        for (std::size_t n : sizes) {
            void* p = ga_aligned_alloc(align, n);
            ASSERT_NE(p, nullptr) << "aligned_alloc(" << align << ", " << n << ")";
            EXPECT_TRUE(IsAligned(p, align)) << p << " from aligned_alloc(" << align << ", " << n << ")";
            EXPECT_TRUE(IsAligned(p, 8)) << p;
            std::size_t u = ga_usable_size(p);
            EXPECT_GE(u, n) << "aligned_alloc(" << align << ", " << n << ")";
            ExpectWholeObjectWritable(p, n);
            ga_free(p);
        }
    }
    ga_stats_t after = QuietStats();
    EXPECT_EQ(after.live_objects, before.live_objects);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
}

TEST(Api, AlignedAllocObjectsStayAlignedWhileManyAreLive) {
    std::vector<void*> ptrs;
    for (std::size_t align : {16, 64, 256, 4096, 8192, 65536}) {
        for (int i = 0; i < 40; i++) {
            void* p = ga_aligned_alloc(align, 24 + i * 40);
            ASSERT_NE(p, nullptr);
            EXPECT_TRUE(IsAligned(p, align)) << p << " wants " << align;
            ptrs.push_back(p);
        }
    }
    for (void* p : ptrs) ga_free(p);
}

TEST(Api, AlignedAllocRejectsNonPowerOfTwoAlignmentWithEinval) {
    for (std::size_t align : {std::size_t{0}, std::size_t{3}, std::size_t{6}, std::size_t{12},
                              std::size_t{24}, std::size_t{100}, std::size_t{4097},
                              (std::size_t{1} << 20) + 1, SIZE_MAX}) {
        EXPECT_TRUE(FailsWithErrno([align] { return ga_aligned_alloc(align, 64); }, EINVAL))
            << "alignment " << align;
    }
}

// ---------------------------------------------------------------- NULL and errno

TEST(Api, FreeOfNullIsANoOp) {
    ga_stats_t before = QuietStats();
    errno = EDOM;
    ga_free(nullptr);
    EXPECT_EQ(errno, EDOM);
    ga_stats_t after = QuietStats();
    EXPECT_EQ(after.frees, before.frees);
    EXPECT_EQ(after.live_objects, before.live_objects);
}

TEST(Api, UsableSizeOfNullIsZero) { EXPECT_EQ(ga_usable_size(nullptr), 0u); }

TEST(Api, FreePreservesErrno) {
    std::vector<void*> ptrs;
    const std::pair<std::size_t, int> batches[] = {
        {1, 200}, {100, 200}, {4000, 50}, {32768, 10}, {40000, 10}, {1 * MiB, 4}, {16 * MiB, 2}};
    for (auto [n, count] : batches) {
        for (int i = 0; i < count; i++) {
            void* p = ga_malloc(n);
            ASSERT_NE(p, nullptr);
            ptrs.push_back(p);
        }
    }
    for (void* p : ptrs) {
        errno = ERANGE;
        ga_free(p);
        ASSERT_EQ(errno, ERANGE) << "ga_free(" << p << ") changed errno";
    }
}

}  // namespace
