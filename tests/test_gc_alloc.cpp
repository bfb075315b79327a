// The collected heap's allocation API: make<T> (zeroed, then constructed),
// make_array, make_conservative, gc::alloc, tiny noscan objects, large
// objects, alignment, and base_of/size_of for interior and foreign pointers.
#include "gc_testutil.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;

// A constructor that sets some members and leaves the others alone: make<T>
// must have zeroed those.
struct Partial {
    std::uint64_t set_by_ctor;
    unsigned char untouched[48];
    std::uint32_t tail;
    Partial() : set_by_ctor(0x1234'5678'9ABC'DEF0ull) {}  // untouched/tail: default-initialised
};
static_assert(sizeof(Partial) == 64);

struct Leaf {
    std::uint64_t key;
    std::uint64_t words[5];
};

struct WithPtr {
    gc::Ptr<Leaf> leaf;
    std::uint64_t a;
    std::uint64_t b;
    WithPtr() : a(11) {}
    WithPtr(std::uint64_t x, std::uint64_t y) : a(x), b(y) {}
};

// Dirties memory of `bytes`-sized objects: allocate, fill with 0xAB, drop,
// and collect, so that later allocations of that size reuse dirty slots.
__attribute__((noinline)) void DirtyAndDrop(std::size_t bytes, int count) {
    for (int i = 0; i < count; i++) {
        void* p = gc::alloc(bytes, false);
        std::memset(p, 0xAB, bytes);
    }
}

TEST(GcAlloc, MakeZeroesThenConstructs) {
    DirtyAndDrop(sizeof(Partial), 4000);
    ScrubStack();
    gc::collect();
    for (int i = 0; i < 4000; i++) {
        Partial* p = gc::make<Partial>();
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(p->set_by_ctor, 0x1234'5678'9ABC'DEF0ull) << "constructor did not run";
        // Inspect the raw bytes the constructor did not write.
        unsigned char raw[sizeof(Partial)];
        std::memcpy(raw, static_cast<void*>(p), sizeof raw);
        ASSERT_EQ(FirstNonZero(raw + 8, sizeof raw - 8), sizeof raw - 8)
            << "object " << p << " #" << i << " not zeroed";
    }
}

TEST(GcAlloc, MakeForwardsConstructorArguments) {
    WithPtr* d = gc::make<WithPtr>();
    EXPECT_EQ(d->a, 11u);
    EXPECT_EQ(d->b, 0u);
    EXPECT_EQ(d->leaf.get(), nullptr);
    WithPtr* w = gc::make<WithPtr>(5, 6);
    EXPECT_EQ(w->a, 5u);
    EXPECT_EQ(w->b, 6u);
    EXPECT_EQ(w->leaf.get(), nullptr);
    int* i = gc::make<int>(42);
    EXPECT_EQ(*i, 42);
    double* f = gc::make<double>();
    EXPECT_EQ(*f, 0.0);
}

struct Counted {
    std::uint64_t v;
    std::uint64_t pad;
    Counted() : v(0xC0FFEE) {}
};

TEST(GcAlloc, MakeArrayConstructsEveryElementAndZeroes) {
    DirtyAndDrop(100 * sizeof(Counted), 200);
    DirtyAndDrop(3000 * sizeof(Counted), 20);
    ScrubStack();
    gc::collect();
    for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{100}, std::size_t{3000}}) {
        Counted* a = gc::make_array<Counted>(n);
        ASSERT_NE(a, nullptr);
        for (std::size_t i = 0; i < n; i++) {
            ASSERT_EQ(a[i].v, 0xC0FFEEu) << "element " << i << " of " << n;
            ASSERT_EQ(a[i].pad, 0u) << "element " << i << " of " << n;
        }
        EXPECT_GE(gc::size_of(a), n * sizeof(Counted));
        EXPECT_EQ(gc::base_of(&a[n - 1].pad), a);
    }
    // Trivially constructible elements: value-initialised (zero).
    DirtyAndDrop(5000 * sizeof(std::uint32_t), 20);
    ScrubStack();
    gc::collect();
    std::uint32_t* z = gc::make_array<std::uint32_t>(5000);
    EXPECT_EQ(FirstNonZero(z, 5000 * sizeof(std::uint32_t)), 5000 * sizeof(std::uint32_t));
}

TEST(GcAlloc, UntypedAllocIsZeroed) {
    for (bool scan : {false, true}) {
        DirtyAndDrop(200, 3000);
        DirtyAndDrop(48 * KiB, 40);
        ScrubStack();
        gc::collect();
        for (std::size_t n : {std::size_t{1}, std::size_t{8}, std::size_t{24}, std::size_t{200},
                              std::size_t{4096}, std::size_t{48 * KiB}, std::size_t{1 * MiB}}) {
            for (int rep = 0; rep < 20; rep++) {
                void* p = gc::alloc(n, scan);
                ASSERT_NE(p, nullptr);
                ASSERT_EQ(FirstNonZero(p, n), n) << n << " bytes, scan=" << scan;
                ASSERT_GE(gc::size_of(p), n);
                std::memset(p, 0x5C, n);  // dirty it for the next round
            }
        }
    }
}

struct OnePtr {
    gc::Ptr<Leaf> p;
};

TEST(GcAlloc, SizeOfIsTheSizeClass) {
    for (std::size_t n = 16; n <= goalloc::kMaxSmallSize; n += (n < 1024 ? 8 : 136)) {
        void* p = gc::alloc(n, false);
        ASSERT_EQ(gc::size_of(p), ClassSizeOf(n)) << "noscan " << n;
        void* q = gc::alloc(n, true);
        ASSERT_EQ(gc::size_of(q), ClassSizeOf(n)) << "scan " << n;
    }
    // Typed objects too; a scan object below 16 bytes is never tiny: it gets
    // a slot of its own size class.
    WithPtr* w = gc::make<WithPtr>();
    EXPECT_EQ(gc::size_of(w), ClassSizeOf(sizeof(WithPtr)));
    OnePtr* o = gc::make<OnePtr>();
    EXPECT_EQ(gc::size_of(o), 8u);
    EXPECT_EQ(gc::base_of(o), o);
}

TEST(GcAlloc, BaseOfInteriorPointers) {
    for (std::size_t n : {std::size_t{16}, std::size_t{48}, std::size_t{200}, std::size_t{1000},
                          std::size_t{8192}, std::size_t{20000}, std::size_t{32768}}) {
        for (bool scan : {false, true}) {
            auto* p = static_cast<unsigned char*>(gc::alloc(n, scan));
            std::size_t sz = gc::size_of(p);
            ASSERT_GE(sz, n);
            for (std::size_t off = 0; off < sz; off += (sz > 512 ? 61 : 1)) {
                ASSERT_EQ(gc::base_of(p + off), p) << "size " << n << " offset " << off;
                ASSERT_EQ(gc::size_of(p + off), sz) << "size " << n << " offset " << off;
            }
            ASSERT_EQ(gc::base_of(p + sz - 1), p);
            // One past the end belongs to a neighbour (or nothing), never to p.
            EXPECT_NE(gc::base_of(p + sz), p);
        }
    }
}

TEST(GcAlloc, LargeObjects) {
    const std::size_t sizes[] = {32 * KiB + 1, 40 * KiB, 100 * KiB + 3, 1 * MiB, 5 * MiB + 17};
    for (std::size_t n : sizes) {
        for (bool scan : {false, true}) {
            auto* p = static_cast<unsigned char*>(gc::alloc(n, scan));
            ASSERT_NE(p, nullptr);
            EXPECT_TRUE(IsAligned(p, 16)) << static_cast<void*>(p);
            std::size_t sz = gc::size_of(p);
            EXPECT_GE(sz, n);
            EXPECT_LT(sz, n + goalloc::kPageSize) << "a large object is rounded to pages";
            ASSERT_EQ(FirstNonZero(p, n), n);
            for (std::size_t off : {std::size_t{0}, std::size_t{1}, n / 3, n / 2, n - 1, sz - 1})
                EXPECT_EQ(gc::base_of(p + off), p) << "size " << n << " offset " << off;
            EXPECT_NE(gc::base_of(p + sz), p);
            FillPattern(p, n, PatternKey(p, n, 1));
            gc::collect();  // p is on this stack: it survives
            EXPECT_TRUE(PatternIntact(p, n, PatternKey(p, n, 1))) << "size " << n;
        }
    }
    // A large array of Ptr: its elements are traced like any Ptr field.
    const std::size_t kCount = 10000;  // 80 KB
    gc::Ptr<Leaf>* arr = gc::make_array<gc::Ptr<Leaf>>(kCount);
    ASSERT_GT(gc::size_of(arr), 32 * KiB);
    for (std::size_t i = 0; i < kCount; i++) {
        Leaf* l = gc::make<Leaf>();
        l->key = i * 7 + 1;
        arr[i] = l;
    }
    ScrubStack();
    gc::collect();
    gc::collect();
    DirtyAndDrop(sizeof(Leaf), 20000);  // would reuse the leaves' slots if they were freed
    for (std::size_t i = 0; i < kCount; i++) {
        ASSERT_NE(arr[i].get(), nullptr);
        ASSERT_EQ(arr[i]->key, i * 7 + 1) << "leaf " << i << " at " << arr[i].get();
        ASSERT_EQ(gc::base_of(arr[i].get()), arr[i].get());
    }
}

TEST(GcAlloc, TinyNoscanObjectsShareBlocks) {
    // Go's tiny allocator packs noscan objects under 16 bytes into 16-byte
    // blocks: consecutive 4-byte allocations on one thread share blocks.
    gc::collect();
    // The pointers are kept in a scanned collected array (a std::vector's
    // malloc'd buffer would not keep them alive).
    constexpr std::size_t kN = 400;
    auto** ps = static_cast<std::uint32_t**>(gc::alloc(kN * sizeof(void*), true));
    for (std::size_t i = 0; i < kN; i++) {
        auto* p = gc::make<std::uint32_t>();
        ASSERT_EQ(*p, 0u);
        *p = 0x10000u + static_cast<std::uint32_t>(i);
        gc::store(reinterpret_cast<void**>(&ps[i]), p);
    }
    std::set<void*> blocks;
    std::set<std::uintptr_t> addrs;
    for (std::size_t i = 0; i < kN; i++) {
        std::uint32_t* p = ps[i];
        void* b = gc::base_of(p);
        ASSERT_NE(b, nullptr) << static_cast<void*>(p);
        ASSERT_LE(Addr(b), Addr(p));
        ASSERT_LT(Addr(p) - Addr(b), 16u);
        ASSERT_EQ(gc::size_of(p), 16u) << "a tiny object lives in a 16-byte block";
        ASSERT_TRUE(IsAligned(p, 4));
        blocks.insert(b);
        addrs.insert(Addr(p));
    }
    EXPECT_EQ(addrs.size(), kN) << "two tiny objects at the same address";
    EXPECT_LE(blocks.size(), kN / 2) << "tiny objects are not combined";
    // Objects in a shared block do not overlap, and survive a collection.
    gc::collect();
    for (std::size_t i = 0; i < kN; i++) ASSERT_EQ(*ps[i], 0x10000u + i) << "tiny object " << i;

    // Mixed tiny sizes, alignment by size as Go's tiny allocator does.
    for (int i = 0; i < 300; i++) {
        auto* c = static_cast<unsigned char*>(gc::alloc(1 + i % 15, false));
        ASSERT_EQ(FirstNonZero(c, 1 + i % 15), static_cast<std::size_t>(1 + i % 15));
        std::size_t n = 1 + i % 15;
        std::size_t want = n % 8 == 0 ? 8 : n % 4 == 0 ? 4 : n % 2 == 0 ? 2 : 1;
        EXPECT_TRUE(IsAligned(c, want)) << static_cast<void*>(c) << " size " << n;
        std::memset(c, 0xFF, n);
    }
}

struct alignas(16) Aligned16 {
    gc::Ptr<Leaf> p;
    std::uint64_t x;
    long double ld;
};

TEST(GcAlloc, Alignment) {
    for (int i = 0; i < 500; i++) {
        auto* a = gc::make<Aligned16>();
        ASSERT_TRUE(IsAligned(a, 16)) << a;
        auto* arr = gc::make_array<Aligned16>(1 + i % 9);
        ASSERT_TRUE(IsAligned(arr, 16)) << arr;
        auto* u = gc::make<std::uint64_t>();
        ASSERT_TRUE(IsAligned(u, 8)) << u;
        // Untyped objects sit at span base + k * class size (Go's layout).
        std::size_t n = 16 + static_cast<std::size_t>(i) * 13;
        void* raw = gc::alloc(n, i & 1);
        ASSERT_TRUE(IsAligned(raw, ClassMinAlign(SizeClassOf(n))))
            << raw << " size " << n;
    }
}

TEST(GcAlloc, ForeignPointersAreNotCollected) {
    int local = 0;
    static int global_var;
    void* m = ga_malloc(64);
    void* big = ga_malloc(100 * KiB);
    EXPECT_EQ(gc::base_of(&local), nullptr);
    EXPECT_EQ(gc::base_of(&global_var), nullptr);
    EXPECT_EQ(gc::base_of(nullptr), nullptr);
    EXPECT_EQ(gc::base_of(m), nullptr) << "a ga_malloc object is not a collected object";
    EXPECT_EQ(gc::base_of(static_cast<char*>(big) + 5000), nullptr);
    EXPECT_EQ(gc::size_of(&local), 0u);
    EXPECT_EQ(gc::size_of(m), 0u);
    EXPECT_EQ(gc::size_of(nullptr), 0u);
    ga_free(m);
    ga_free(big);
    // And a collected object is not a malloc object: ga_malloc never returns
    // memory of the collected heap even while both are busy.
    std::set<void*> gcobjs;
    for (int i = 0; i < 2000; i++) gcobjs.insert(gc::alloc(64, true));
    for (int i = 0; i < 2000; i++) {
        void* q = ga_malloc(64);
        EXPECT_EQ(gc::base_of(q), nullptr);
        EXPECT_EQ(gcobjs.count(q), 0u);
        ga_free(q);
    }
}

struct Conservative {
    void* raw[6];
    std::uint64_t n;
};

TEST(GcAlloc, MakeConservativeConstructs) {
    auto* c = gc::make_conservative<Conservative>();
    for (void* r : c->raw) EXPECT_EQ(r, nullptr);
    EXPECT_EQ(c->n, 0u);
    Leaf* l = gc::make<Leaf>();
    gc::store(&c->raw[2], l);
    EXPECT_EQ(c->raw[2], l);
    EXPECT_EQ(gc::size_of(c), ClassSizeOf(sizeof(Conservative)));
}

}  // namespace
