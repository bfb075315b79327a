// Reachability: what keeps a collected object alive across collect() (Root<T>,
// the registered thread's stack including interior pointers, add_roots ranges,
// Ptr<T> fields, raw words of conservatively scanned objects) and what does
// not (noscan objects' words, raw fields of precisely scanned types, dropped
// roots, unreachable cycles). Death is observed through finalizers, through
// base_of() of a hidden address and through MemStats.
//
// Every test runs with automatic collection off (set_gc_percent(-1)), so the
// only cycles are the test's collect() calls. Objects meant to die are made in
// noinline functions and only their XOR-hidden addresses are kept; see
// gc_testutil.h for why CollectUntil retries a few cycles.
#include "gc_testutil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;

struct Node {
    gc::Ptr<Node> next;
    gc::Ptr<Node> other;
    std::uint64_t id;
    std::uint64_t check;
    std::uint64_t payload[4];
};
static_assert(sizeof(Node) == 64);

void Fill(Node* n, std::uint64_t id) {
    n->id = id;
    std::uint64_t c = id;
    for (int i = 0; i < 4; i++) {
        n->payload[i] = Mix(id * 4 + static_cast<std::uint64_t>(i));
        c = Mix(c ^ n->payload[i]);
    }
    n->check = c;
}

// Empty string if n holds the data Fill(n, id) wrote.
std::string Check(const Node* n, std::uint64_t id) {
    char buf[200];
    if (n == nullptr) return "null node (id " + std::to_string(id) + ")";
    std::uint64_t c = id;
    for (int i = 0; i < 4; i++) {
        if (n->payload[i] != Mix(id * 4 + static_cast<std::uint64_t>(i))) {
            std::snprintf(buf, sizeof buf, "node %p (id %llu): payload[%d] = %#llx, corrupted",
                          static_cast<const void*>(n), static_cast<unsigned long long>(id), i,
                          static_cast<unsigned long long>(n->payload[i]));
            return buf;
        }
        c = Mix(c ^ n->payload[i]);
    }
    if (n->id != id || n->check != c) {
        std::snprintf(buf, sizeof buf, "node %p: id %llu (want %llu), bad checksum",
                      static_cast<const void*>(n), static_cast<unsigned long long>(n->id),
                      static_cast<unsigned long long>(id));
        return buf;
    }
    return "";
}

// ---- finalizer bookkeeping ----
constexpr int kMaxIds = 1 << 16;
std::atomic<int> g_fin[kMaxIds];
std::atomic<int> g_fin_total{0};
void ResetFinalizers() {
    for (auto& f : g_fin) f.store(0);
    g_fin_total.store(0);
}
void OnFinalize(Node* n) {
    g_fin[n->id % kMaxIds].fetch_add(1);
    g_fin_total.fetch_add(1);
}
bool Finalized(std::uint64_t id) { return g_fin[id % kMaxIds].load() > 0; }

// Runs f in a frame of its own: pointers f leaves in its stack slots are in a
// dead frame once it returns (and ScrubStack clears them), not in the test
// body's frame, which stays live across the collections that follow.
template <class F>
__attribute__((noinline)) void Isolated(F&& f) {
    f();
    __asm__ volatile("" ::: "memory");
}

// The node holding `interior` (any address inside it) holds id's data.
__attribute__((noinline)) std::string CheckAt(const void* interior, std::uint64_t id) {
    auto* n = static_cast<const Node*>(gc::base_of(interior));
    if (n == nullptr) return "no live object at " + HexAddr(interior);
    return Check(n, id);
}

// Allocates garbage of Node's size class that overwrites any freed Node slot.
__attribute__((noinline)) void Churn(std::size_t count) {
    for (std::size_t i = 0; i < count; i++) {
        Node* g = gc::make<Node>();
        std::memset(g->payload, 0xEE, sizeof g->payload);
        g->id = ~std::uint64_t{0};
    }
}

class GcReach : public ::testing::Test {
  protected:
    void SetUp() override {
        prev_pct_ = gc::set_gc_percent(-1);
        ResetFinalizers();
        gc::collect();
        gc::run_finalizers();
        ResetFinalizers();
    }
    void TearDown() override {
        gc::collect();
        gc::run_finalizers();
        gc::set_gc_percent(prev_pct_);
    }
    // collect() a few times with garbage in between, so that a wrongly freed
    // object is both poisoned (debug builds) and handed out again.
    static void CollectAndChurn(int rounds = 3) {
        for (int i = 0; i < rounds; i++) {
            ScrubStack();
            gc::collect();
            Churn(5000);
        }
        ScrubStack();
        gc::collect();
    }

  private:
    int prev_pct_ = 100;
};

// A chain of len nodes with ids first..first+len-1, the last one finalizable.
__attribute__((noinline)) Node* MakeChain(std::uint64_t first, int len) {
    Node* head = nullptr;
    for (int i = len - 1; i >= 0; i--) {
        Node* n = gc::make<Node>();
        Fill(n, first + static_cast<std::uint64_t>(i));
        n->next = head;
        if (i == len - 1) gc::set_finalizer(n, &OnFinalize);
        head = n;
    }
    return head;
}
__attribute__((noinline)) void MakeChainInto(gc::Root<Node>& r, std::uint64_t first, int len) {
    r = MakeChain(first, len);
}
std::string CheckChain(const Node* n, std::uint64_t first, int len) {
    for (int i = 0; i < len; i++, n = n->next.get()) {
        std::string e = Check(n, first + static_cast<std::uint64_t>(i));
        if (!e.empty()) return "chain element " + std::to_string(i) + ": " + e;
    }
    return n == nullptr ? "" : "chain too long";
}

TEST_F(GcReach, RootKeepsGraphAlive) {
    // The Root lives in malloc'd memory, which the collector does not scan:
    // only its registration keeps the chain alive.
    auto root = std::make_unique<gc::Root<Node>>();
    MakeChainInto(*root, 100, 200);
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_EQ(g_fin_total.load(), 0) << "a finalizer ran for a reachable object";
    Isolated([&] { EXPECT_EQ(CheckChain(root->get(), 100, 200), ""); });

    // Dropping the root makes the chain garbage.
    *root = nullptr;
    EXPECT_TRUE(CollectUntil([] { return Finalized(299); })) << "the dropped chain never died";
}

TEST_F(GcReach, DestroyedRootNoLongerKeepsAlive) {
    auto root = std::make_unique<gc::Root<Node>>();
    MakeChainInto(*root, 1000, 10);
    // A copy keeps it after the original is destroyed.
    auto copy = std::make_unique<gc::Root<Node>>(*root);
    root.reset();
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_FALSE(Finalized(1009));
    Isolated([&] { EXPECT_EQ(CheckChain(copy->get(), 1000, 10), ""); });
    copy.reset();
    EXPECT_TRUE(CollectUntil([] { return Finalized(1009); })) << "destroyed Roots still held it";
}

__attribute__((noinline)) char* MakeNodeInterior(std::uint64_t id) {
    Node* n = gc::make<Node>();
    Fill(n, id);
    gc::set_finalizer(n, &OnFinalize);
    return reinterpret_cast<char*>(&n->payload[2]) + 3;  // interior, unaligned
}

TEST_F(GcReach, StackInteriorPointerKeepsAlive) {
    char* volatile interior = MakeNodeInterior(2000);
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_FALSE(Finalized(2000)) << "an interior pointer on the stack did not keep its object";
    Isolated([&] {
        auto* n = static_cast<Node*>(gc::base_of(interior));
        ASSERT_NE(n, nullptr);
        EXPECT_EQ(reinterpret_cast<char*>(n) + offsetof(Node, payload) + 19, interior);
        EXPECT_EQ(Check(n, 2000), "");
    });
    interior = nullptr;
    EXPECT_TRUE(CollectUntil([] { return Finalized(2000); }));
}

__attribute__((noinline)) void StoreInteriorInto(void** slot, std::uint64_t id) {
    *slot = MakeNodeInterior(id);
}

TEST_F(GcReach, AddRootsRangeKeepsAlive) {
    // The range is malloc'd memory: scanned only because it was added.
    void** range = static_cast<void**>(std::calloc(16, sizeof(void*)));
    ASSERT_NE(range, nullptr);
    gc::add_roots(range, 16 * sizeof(void*));
    StoreInteriorInto(&range[5], 3000);
    StoreInteriorInto(&range[15], 3001);  // the last word of the range
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_FALSE(Finalized(3000)) << "add_roots range not scanned";
    EXPECT_FALSE(Finalized(3001)) << "last word of an add_roots range not scanned";
    Isolated([&] {
        EXPECT_EQ(CheckAt(range[5], 3000), "");
        EXPECT_EQ(CheckAt(range[15], 3001), "");
    });

    gc::remove_roots(range);
    EXPECT_TRUE(CollectUntil([] { return Finalized(3000) && Finalized(3001); }))
        << "objects still alive after remove_roots";
    std::free(range);
}

// A graph with cycles, every node reachable from the head through Ptr fields.
__attribute__((noinline)) void MakeGraph(gc::Root<Node>& r, std::uint64_t first, int n) {
    std::vector<Node*> nodes;  // malloc'd: not a root
    for (int i = 0; i < n; i++) {
        Node* x = gc::make<Node>();
        Fill(x, first + static_cast<std::uint64_t>(i));
        nodes.push_back(x);
    }
    Rng rng(first);
    for (int i = 0; i < n; i++) {
        if (i + 1 < n) nodes[i]->next = nodes[i + 1];
        nodes[i]->other = nodes[rng.Range(0, static_cast<std::size_t>(n - 1))];
    }
    nodes[n - 1]->next = nodes[0];  // one big cycle
    r = nodes[0];
    std::memset(nodes.data(), 0, nodes.size() * sizeof(Node*));
}

TEST_F(GcReach, PtrFieldsTraceGraph) {
    constexpr int kN = 20000;
    auto root = std::make_unique<gc::Root<Node>>();
    MakeGraph(*root, 10000, kN);
    CollectAndChurn();
    const Node* n = root->get();
    for (int i = 0; i < kN; i++, n = n->next.get()) {
        ASSERT_EQ(Check(n, 10000 + static_cast<std::uint64_t>(i)), "") << "node " << i;
        ASSERT_NE(n->other.get(), nullptr);
        ASSERT_EQ(gc::base_of(n->other.get()), n->other.get());
        ASSERT_GE(n->other->id, 10000u);
        ASSERT_LT(n->other->id, 10000u + kN);
    }
    EXPECT_EQ(n, root->get()) << "the cycle is broken";
}

__attribute__((noinline)) void MakeCycleWithFinalizedLeaf(std::uint64_t id) {
    Node* a = gc::make<Node>();
    Node* b = gc::make<Node>();
    Node* c = gc::make<Node>();
    Fill(a, id + 1);
    Fill(b, id + 2);
    Fill(c, id);
    a->next = b;
    b->next = a;
    a->other = c;
    gc::set_finalizer(c, &OnFinalize);
}

TEST_F(GcReach, UnreachableCyclesAreCollected) {
    // A finalizer in a cycle may never run (as in Go), so the finalizable
    // object hangs off the cycle: it dies only if the cycle is freed too.
    for (int i = 0; i < 100; i++) MakeCycleWithFinalizedLeaf(20000 + 10 * static_cast<std::uint64_t>(i));
    EXPECT_TRUE(CollectUntil([] { return g_fin_total.load() >= 100; }))
        << "finalized " << g_fin_total.load() << " of 100";
    // Nothing runs twice.
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_EQ(g_fin_total.load(), 100);
}

__attribute__((noinline)) void MakeGarbage(std::size_t count) {
    for (std::size_t i = 0; i < count; i++) {
        Node* n = gc::make<Node>();
        n->id = i;
        if (i % 4) n->next = gc::make<Node>();  // a few pointers to follow
    }
}

TEST_F(GcReach, UnreachableObjectsAreFreedInStats) {
    constexpr std::size_t kN = 40000;
    const std::uint64_t kObjects = kN + kN * 3 / 4;
    gc::collect();
    gc::MemStats s0 = ReadStats();
    EXPECT_EQ(s0.Mallocs - s0.Frees, s0.HeapObjects);
    MakeGarbage(kN);
    gc::MemStats s1 = ReadStats();
    EXPECT_GE(s1.HeapObjects, s0.HeapObjects + kObjects);
    EXPECT_GE(s1.Mallocs, s0.Mallocs + kObjects);
    EXPECT_GE(s1.HeapAlloc, s0.HeapAlloc + kObjects * sizeof(Node));
    EXPECT_GE(s1.TotalAlloc, s0.TotalAlloc + kObjects * sizeof(Node));
    EXPECT_EQ(s1.NumGC, s0.NumGC) << "a cycle ran with GC off";

    ScrubStack();
    gc::collect();
    gc::MemStats s2 = ReadStats();
    EXPECT_EQ(s2.NumGC, s1.NumGC + 1);
    // A handful may be kept by stale stack words; not thousands.
    EXPECT_LE(s2.HeapObjects, s0.HeapObjects + 100) << "garbage not freed";
    EXPECT_GE(s2.Frees, s1.Frees + kObjects - 100);
    EXPECT_LE(s2.HeapAlloc, s0.HeapAlloc + 100 * 64);
    EXPECT_EQ(s2.Mallocs - s2.Frees, s2.HeapObjects);
    EXPECT_GE(s2.TotalAlloc, s1.TotalAlloc) << "TotalAlloc is cumulative";
}

__attribute__((noinline)) Hidden MakeHiddenPlain(std::uint64_t id) {
    Node* n = gc::make<Node>();
    Fill(n, id);
    return Hidden(n);
}

__attribute__((noinline)) bool IsLiveObject(Hidden h) { return gc::base_of(h.get()) == h.get(); }

TEST_F(GcReach, UnreachableObjectIsNoLongerAnObject) {
    Hidden h = MakeHiddenPlain(4000);
    ASSERT_TRUE(IsLiveObject(h));
    // No allocation from here on: the slot cannot be handed out again, so
    // base_of() answers whether the object itself is still allocated.
    EXPECT_TRUE(CollectUntil([&] { return !IsLiveObject(h); }))
        << "unreachable object still allocated after collect()";
}

// ---- what is not traced ----
struct Box {  // no Ptr members: noscan
    Node* raw;
    std::uint64_t x;
};
struct Mixed {  // precise: only `real` is a pointer
    std::uintptr_t fake;
    gc::Ptr<Node> real;
    Node* raw;
};

__attribute__((noinline)) void StoreFinalizedNodeIn(Node** slot, std::uint64_t id) {
    Node* n = gc::make<Node>();
    Fill(n, id);
    gc::set_finalizer(n, &OnFinalize);
    *slot = n;
}

TEST_F(GcReach, NoscanObjectWordsAreNotTraced) {
    auto box_root = std::make_unique<gc::Root<Box>>(gc::make<Box>());
    StoreFinalizedNodeIn(&(*box_root)->raw, 5000);
    auto buf_root = std::make_unique<gc::Root<char>>(static_cast<char*>(gc::alloc(256, false)));
    StoreFinalizedNodeIn(reinterpret_cast<Node**>(buf_root->get()) + 7, 5001);
    // Control: the same kind of object referenced from a Ptr stays.
    auto keep = std::make_unique<gc::Root<Node>>();
    MakeChainInto(*keep, 5002, 1);

    EXPECT_TRUE(CollectUntil([] { return Finalized(5000) && Finalized(5001); }))
        << "a pointer inside a noscan object kept its target alive (noscan objects were scanned)";
    EXPECT_FALSE(Finalized(5002));
    EXPECT_EQ((*box_root)->x, 0u);
    Isolated([&] { EXPECT_EQ(Check(keep->get(), 5002), ""); });
}

TEST_F(GcReach, RawFieldsOfPreciseTypesAreNotTraced) {
    auto root = std::make_unique<gc::Root<Mixed>>(gc::make<Mixed>());
    StoreFinalizedNodeIn(&(*root)->raw, 6000);
    Isolated([&] {
        Node* tmp = nullptr;
        StoreFinalizedNodeIn(&tmp, 6001);
        (*root)->fake = reinterpret_cast<std::uintptr_t>(tmp);
        tmp = nullptr;
        StoreFinalizedNodeIn(&tmp, 6002);
        (*root)->real = tmp;
    });
    EXPECT_TRUE(CollectUntil([] { return Finalized(6000) && Finalized(6001); }))
        << "raw/integer fields of a type with Ptr members were traced";
    EXPECT_FALSE(Finalized(6002)) << "the Ptr field did not keep its target";
    Isolated([&] { EXPECT_EQ(Check((*root)->real.get(), 6002), ""); });
}

struct Conservative {
    void* raw[6];
    std::uint64_t n;
};

__attribute__((noinline)) void StoreFinalizedInterior(void** slot, std::uint64_t id) {
    Node* n = gc::make<Node>();
    Fill(n, id);
    gc::set_finalizer(n, &OnFinalize);
    gc::store(slot, reinterpret_cast<char*>(n) + 24);  // interior
}

TEST_F(GcReach, ConservativeObjectsTraceRawPointers) {
    auto root = std::make_unique<gc::Root<Conservative>>(gc::make_conservative<Conservative>());
    for (int i = 0; i < 6; i++) StoreFinalizedInterior(&(*root)->raw[i], 7000 + static_cast<std::uint64_t>(i));
    // Untyped scanned memory, large and small.
    auto big = std::make_unique<gc::Root<char>>(static_cast<char*>(gc::alloc(100 * KiB, true)));
    auto small = std::make_unique<gc::Root<char>>(static_cast<char*>(gc::alloc(40, true)));
    StoreFinalizedInterior(reinterpret_cast<void**>(big->get()) + 12000, 7010);
    StoreFinalizedInterior(reinterpret_cast<void**>(small->get()) + 4, 7011);
    CollectAndChurn();
    gc::run_finalizers();
    EXPECT_EQ(g_fin_total.load(), 0) << "raw pointers in scanned objects were not traced";
    Isolated([&] {
        for (int i = 0; i < 6; i++)
            EXPECT_EQ(CheckAt((*root)->raw[i], 7000 + static_cast<std::uint64_t>(i)), "");
        EXPECT_EQ(CheckAt(reinterpret_cast<void**>(big->get())[12000], 7010), "");
        EXPECT_EQ(CheckAt(reinterpret_cast<void**>(small->get())[4], 7011), "");
    });

    // Clearing a slot (through the barrier) lets its target go.
    gc::store(&(*root)->raw[3], nullptr);
    *big = nullptr;
    EXPECT_TRUE(CollectUntil([] { return Finalized(7003) && Finalized(7010); }));
    EXPECT_FALSE(Finalized(7000));
    EXPECT_FALSE(Finalized(7011));
}

struct Pair {
    gc::Ptr<Node> a;
    std::uint64_t x;
    gc::Ptr<Node> b;
};

__attribute__((noinline)) void FillPairs(Pair* p, std::size_t n) {
    for (std::size_t i = 0; i < n; i++) {
        Node* a = gc::make<Node>();
        Fill(a, 100000 + 2 * i);
        Node* b = gc::make<Node>();
        Fill(b, 100000 + 2 * i + 1);
        p[i].a = a;
        p[i].b = b;
        p[i].x = i;
    }
}

TEST_F(GcReach, ArraysOfTypedObjectsAreTracedPerElement) {
    for (std::size_t n : {std::size_t{3}, std::size_t{500}, std::size_t{3000}}) {  // 3000*24 > 32 KiB
        auto root = std::make_unique<gc::Root<Pair>>(gc::make_array<Pair>(n));
        FillPairs(root->get(), n);
        CollectAndChurn();
        Pair* p = root->get();
        for (std::size_t i = 0; i < n; i++) {
            ASSERT_EQ(p[i].x, i);
            ASSERT_EQ(Check(p[i].a.get(), 100000 + 2 * i), "") << "element " << i << " of " << n;
            ASSERT_EQ(Check(p[i].b.get(), 100000 + 2 * i + 1), "") << "element " << i << " of " << n;
        }
    }
}

// Large objects are scanned in batches whose lookups are prefetched (mark.cpp,
// shade_batch): every referent must still be found, through precise Ptr<>
// arrays and conservatively scanned blocks alike, interior pointers included,
// with the referents spread over many spans and some words not pointers.
__attribute__((noinline)) void FillLarge(gc::Ptr<Node>* precise, void** cons, std::size_t n) {
    for (std::size_t i = 0; i < n; i++) {
        Node* a = gc::make<Node>();
        Fill(a, 500000 + 2 * i);
        Node* b = gc::make<Node>();
        Fill(b, 500000 + 2 * i + 1);
        precise[i] = a;
        // Conservative words: b itself, an interior pointer to it, or a
        // number that is no pointer.
        void* v = i % 3 == 0 ? static_cast<void*>(b)
                  : i % 3 == 1 ? static_cast<void*>(reinterpret_cast<char*>(b) + 24)
                               : reinterpret_cast<void*>(static_cast<std::uintptr_t>(i * 2654435761u) | 1);
        gc::store(&cons[i], v);
        if (i % 3 == 2) a->other = b;  // the third kind stays alive through a
    }
}

TEST_F(GcReach, LargeObjectsTraceEveryReferentInBatches) {
    for (std::size_t n : {std::size_t{5000}, std::size_t{70000}}) {  // 40 KB and 560 KB (several oblets)
        auto precise = std::make_unique<gc::Root<gc::Ptr<Node>>>(gc::make_array<gc::Ptr<Node>>(n));
        auto cons = std::make_unique<gc::Root<void*>>(static_cast<void**>(gc::alloc(n * sizeof(void*), true)));
        FillLarge(precise->get(), cons->get(), n);
        CollectAndChurn();
        CollectAndChurn();
        for (std::size_t i = 0; i < n; i++) {
            Node* a = precise->get()[i].get();
            ASSERT_EQ(Check(a, 500000 + 2 * i), "") << "precise element " << i << " of " << n;
            Node* b = i % 3 == 2 ? a->other.get()
                                 : static_cast<Node*>(gc::base_of(cons->get()[i]));
            ASSERT_EQ(Check(b, 500000 + 2 * i + 1), "") << "conservative element " << i << " of " << n;
        }
    }
}

}  // namespace
