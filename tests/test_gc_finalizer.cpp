// Finalizers (Go's runtime.SetFinalizer): run exactly once, on a finalizer
// thread, after the object became unreachable; what the object references
// stays alive and intact until the finalizer has run; nullptr cancels;
// run_finalizers() waits for the queued ones; a finalizer may resurrect its
// object, allocate, and its object is then collected without a second run.
//
// Automatic collection is off in these tests (only the test's collect()s run);
// objects meant to die are made in noinline functions (see gc_testutil.h).
#include "gc_testutil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;

template <class F>
__attribute__((noinline)) void Isolated(F&& f) {
    f();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) bool IsLiveObject(Hidden h) { return gc::base_of(h.get()) == h.get(); }

class GcFinalizer : public ::testing::Test {
  protected:
    void SetUp() override {
        prev_pct_ = gc::set_gc_percent(-1);
        gc::collect();
        gc::run_finalizers();
    }
    void TearDown() override {
        gc::collect();
        gc::run_finalizers();
        gc::set_gc_percent(prev_pct_);
    }

  private:
    int prev_pct_ = 100;
};

// ---- exactly once, on another thread, with the object's address ----
struct Obj {
    std::uint64_t id;
    std::uint64_t magic;
    gc::Ptr<Obj> next;
};
constexpr std::uint64_t kMagic = 0x0B1EC7'0B1EC7ull;
constexpr int kMany = 3000;
std::atomic<int> g_once_count[kMany];
std::atomic<int> g_once_total{0};
std::atomic<int> g_once_bad{0};
std::atomic<int> g_once_on_main{0};
std::uintptr_t g_once_hidden[kMany];  // XOR-hidden addresses
std::thread::id g_main_thread;

void OnceFinalizer(Obj* o) {
    if (o->magic != kMagic || o->id >= kMany ||
        (reinterpret_cast<std::uintptr_t>(o) ^ kHideMask) != g_once_hidden[o->id]) {
        g_once_bad.fetch_add(1);
        return;
    }
    if (std::this_thread::get_id() == g_main_thread) g_once_on_main.fetch_add(1);
    g_once_count[o->id].fetch_add(1);
    g_once_total.fetch_add(1);
}

__attribute__((noinline)) void MakeOnceObjects() {
    for (int i = 0; i < kMany; i++) {
        Obj* o = gc::make<Obj>();
        o->id = static_cast<std::uint64_t>(i);
        o->magic = kMagic;
        g_once_hidden[i] = reinterpret_cast<std::uintptr_t>(o) ^ kHideMask;
        gc::set_finalizer(o, &OnceFinalizer);
    }
}

TEST_F(GcFinalizer, RunsExactlyOnceOnAnotherThread) {
    g_main_thread = std::this_thread::get_id();
    MakeOnceObjects();
    EXPECT_TRUE(CollectUntil([] { return g_once_total.load() == kMany; }))
        << "finalized " << g_once_total.load() << " of " << kMany;
    // More cycles: nothing runs again.
    for (int i = 0; i < 3; i++) {
        ScrubStack();
        gc::collect();
    }
    gc::run_finalizers();
    EXPECT_EQ(g_once_bad.load(), 0) << "a finalizer got a wrong or damaged object";
    EXPECT_EQ(g_once_on_main.load(), 0) << "finalizers ran on the collecting thread";
    for (int i = 0; i < kMany; i++) ASSERT_EQ(g_once_count[i].load(), 1) << "object " << i;
}

// ---- not while reachable ----
std::atomic<int> g_reach_count{0};
void ReachFinalizer(Obj*) { g_reach_count.fetch_add(1); }

// Held from a rooted array (not chained: a chain of finalizable objects is
// finalized one link per cycle, see OrderedAlongChains).
__attribute__((noinline)) void MakeFinalizedArray(gc::Root<gc::Ptr<Obj>>& arr, int n) {
    arr = gc::make_array<gc::Ptr<Obj>>(static_cast<std::size_t>(n));
    for (int i = 0; i < n; i++) {
        Obj* o = gc::make<Obj>();
        o->id = static_cast<std::uint64_t>(i);
        o->magic = kMagic;
        gc::set_finalizer(o, &ReachFinalizer);
        arr.get()[i] = o;
    }
}

TEST_F(GcFinalizer, NotRunWhileReachable) {
    auto arr = std::make_unique<gc::Root<gc::Ptr<Obj>>>();
    MakeFinalizedArray(*arr, 500);
    for (int i = 0; i < 4; i++) {
        ScrubStack();
        gc::collect();
    }
    gc::run_finalizers();
    EXPECT_EQ(g_reach_count.load(), 0);
    *arr = nullptr;
    EXPECT_TRUE(CollectUntil([] { return g_reach_count.load() == 500; }))
        << "finalized " << g_reach_count.load() << " of 500";
}

// ---- referenced objects stay alive and intact until the finalizer ran ----
struct Payload {
    std::uint64_t words[32];  // noscan, 256 bytes
};
struct Holder {
    gc::Ptr<Payload> child;
    gc::Ptr<Holder> sibling;  // another finalizable object (OrderedAlongChains)
    std::uint64_t id;
};
constexpr int kHolders = 300;
std::atomic<bool> g_gate_open{false};
std::atomic<bool> g_gate_timed_out{false};
std::atomic<int> g_holder_done{0};
std::atomic<int> g_holder_bad{0};
std::atomic<int> g_holder_dup{0};
std::atomic<int> g_holder_seen[kHolders];

std::uint64_t PayloadWord(std::uint64_t id, int i) { return Mix(id * 131 + static_cast<std::uint64_t>(i)); }

void HolderFinalizer(Holder* h) {
    // The first finalizer holds the finalizer thread until the test has run
    // more cycles and reused freed memory; at most 20 s, to never hang.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!g_gate_open.load()) {
        if (std::chrono::steady_clock::now() > until) {
            g_gate_timed_out.store(true);
            g_gate_open.store(true);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    bool ok = h->id < kHolders;
    Payload* p = h->child.get();
    ok = ok && p != nullptr && gc::base_of(p) == p;
    for (int i = 0; ok && i < 32; i++) ok = p->words[i] == PayloadWord(h->id, i);
    if (!ok) {
        std::fprintf(stderr, "finalizer of holder %p: child %p damaged or freed\n",
                     static_cast<void*>(h), static_cast<void*>(p));
        g_holder_bad.fetch_add(1);
    } else if (g_holder_seen[h->id].fetch_add(1) != 0) {
        g_holder_dup.fetch_add(1);
    }
    g_holder_done.fetch_add(1);
}

__attribute__((noinline)) void MakeHolders() {
    for (int i = 0; i < kHolders; i++) {
        Holder* h = gc::make<Holder>();
        h->id = static_cast<std::uint64_t>(i);
        Payload* p = gc::make<Payload>();
        for (int w = 0; w < 32; w++) p->words[w] = PayloadWord(h->id, w);
        h->child = p;
        gc::set_finalizer(h, &HolderFinalizer);
    }
}

__attribute__((noinline)) void ChurnPayloads(int n) {
    for (int i = 0; i < n; i++) {
        Payload* p = gc::make<Payload>();
        std::memset(p->words, 0xEE, sizeof p->words);
    }
}

TEST_F(GcFinalizer, ReferencedObjectsSurviveUntilFinalizerRan) {
    MakeHolders();
    // Cycles while the finalizer thread is held: the holders' children must
    // not be freed, however many cycles run and however much is allocated.
    for (int i = 0; i < 4; i++) {
        ScrubStack();
        gc::collect();
        ChurnPayloads(4000);
    }
    EXPECT_FALSE(g_gate_timed_out.load()) << "collect() waited for the finalizer thread";
    g_gate_open.store(true);
    EXPECT_TRUE(CollectUntil([] { return g_holder_done.load() == kHolders; }))
        << "finalized " << g_holder_done.load() << " of " << kHolders;
    EXPECT_EQ(g_holder_bad.load(), 0) << "objects referenced by finalizable objects were freed early";
    EXPECT_EQ(g_holder_dup.load(), 0) << "a finalizer ran twice";
}

// ---- ordering: A -> B, both finalizable: A's finalizer runs first, and B's
// only after A is gone (Go: "only the finalizer for A runs; once A is freed,
// the finalizer for B can run"), so B is intact when A's finalizer looks. ----
constexpr int kChain = 5;
std::mutex g_order_mu;
std::vector<std::uint64_t> g_order;
std::atomic<int> g_order_bad{0};
__attribute__((noinline)) void OrderedCheck(Holder* h) {
    Holder* s = h->sibling.get();
    if (s != nullptr && (gc::base_of(s) != s || s->id != h->id + 1 ||
                         s->child.get() == nullptr || s->child->words[0] != PayloadWord(s->id, 0)))
        g_order_bad.fetch_add(1);
    std::lock_guard<std::mutex> g(g_order_mu);
    g_order.push_back(h->id);
}
void OrderedFinalizer(Holder* h) {
    OrderedCheck(h);
    // The finalizer thread's stack is scanned conservatively too: do not
    // leave the sibling's address in a dead frame there.
    ScrubStack();
}
__attribute__((noinline)) void MakeOrderedChain() {
    Holder* next = nullptr;
    for (int i = kChain - 1; i >= 0; i--) {
        Holder* h = gc::make<Holder>();
        h->id = 1000 + static_cast<std::uint64_t>(i);
        Payload* p = gc::make<Payload>();
        p->words[0] = PayloadWord(h->id, 0);
        h->child = p;
        h->sibling = next;
        gc::set_finalizer(h, &OrderedFinalizer);
        next = h;
    }
}

TEST_F(GcFinalizer, OrderedAlongChains) {
    MakeOrderedChain();
    auto count = [] {
        std::lock_guard<std::mutex> g(g_order_mu);
        return g_order.size();
    };
    // One link per cycle at best, so give it a few more cycles than links.
    EXPECT_TRUE(CollectUntil([&] { return count() == kChain; }, 4 * kChain))
        << "finalized " << count() << " of " << kChain;
    EXPECT_EQ(g_order_bad.load(), 0) << "a finalizer saw its (finalizable) referent freed";
    std::lock_guard<std::mutex> g(g_order_mu);
    for (std::size_t i = 0; i < g_order.size(); i++) EXPECT_EQ(g_order[i], 1000 + i) << "position " << i;
}

// ---- cancel ----
std::atomic<int> g_cancel_ran{0};
std::atomic<int> g_control_ran{0};
void CancelledFinalizer(Obj*) { g_cancel_ran.fetch_add(1); }
void ControlFinalizer(Obj*) { g_control_ran.fetch_add(1); }

__attribute__((noinline)) Hidden MakeCancelled() {
    Obj* a = gc::make<Obj>();
    gc::set_finalizer(a, &CancelledFinalizer);
    Obj* b = gc::make<Obj>();
    gc::set_finalizer(b, &ControlFinalizer);
    gc::set_finalizer(a, static_cast<void (*)(Obj*)>(nullptr));
    return Hidden(a);
}

TEST_F(GcFinalizer, NullptrCancels) {
    Hidden a = MakeCancelled();
    EXPECT_TRUE(CollectUntil([] { return g_control_ran.load() == 1; })) << "control never finalized";
    // The cancelled object dies like any other, without its finalizer.
    EXPECT_TRUE(CollectUntil([&] { return !IsLiveObject(a); })) << "cancelled object never freed";
    gc::run_finalizers();
    EXPECT_EQ(g_cancel_ran.load(), 0) << "a cancelled finalizer ran";
}

// ---- resurrection: the finalizer runs once; the object then dies silently ----
gc::Root<Obj>* g_resurrected = nullptr;  // new'd: malloc memory
std::atomic<int> g_resurrect_ran{0};
__attribute__((noinline)) void Resurrect(Obj* o) {
    g_resurrect_ran.fetch_add(1);
    *g_resurrected = o;
}
void ResurrectFinalizer(Obj* o) {
    Resurrect(o);
    ScrubStack();  // as in OrderedFinalizer
}

__attribute__((noinline)) Hidden MakeResurrectable() {
    Obj* o = gc::make<Obj>();
    o->id = 77;
    o->magic = kMagic;
    Obj* n = gc::make<Obj>();
    n->id = 78;
    n->magic = kMagic;
    o->next = n;
    gc::set_finalizer(o, &ResurrectFinalizer);
    return Hidden(o);
}

TEST_F(GcFinalizer, ResurrectedObjectIsIntactAndNotFinalizedTwice) {
    g_resurrected = new gc::Root<Obj>();
    Hidden h = MakeResurrectable();
    ASSERT_TRUE(CollectUntil([] { return g_resurrect_ran.load() == 1; }));
    for (int i = 0; i < 3; i++) {
        ScrubStack();
        gc::collect();
        ChurnPayloads(1000);
    }
    Isolated([&] {
        Obj* o = g_resurrected->get();
        ASSERT_EQ(o, h.get());
        EXPECT_EQ(o->id, 77u);
        EXPECT_EQ(o->magic, kMagic);
        ASSERT_NE(o->next.get(), nullptr);
        EXPECT_EQ(o->next->id, 78u);
        EXPECT_EQ(o->next->magic, kMagic);
    });
    *g_resurrected = nullptr;
    EXPECT_TRUE(CollectUntil([&] { return !IsLiveObject(h); })) << "resurrected object never freed";
    gc::run_finalizers();
    EXPECT_EQ(g_resurrect_ran.load(), 1) << "the finalizer ran again";
    delete g_resurrected;
    g_resurrected = nullptr;
}

// ---- run_finalizers() waits ----
std::atomic<int> g_slow_started{0};
std::atomic<int> g_slow_done{0};
void SlowFinalizer(Obj*) {
    g_slow_started.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    g_slow_done.fetch_add(1);
}
__attribute__((noinline)) void MakeSlow(int n) {
    for (int i = 0; i < n; i++) gc::set_finalizer(gc::make<Obj>(), &SlowFinalizer);
}

TEST_F(GcFinalizer, RunFinalizersWaitsForQueued) {
    MakeSlow(15);
    int done = 0;
    for (int attempt = 0; attempt < 6 && done < 15; attempt++) {
        ScrubStack();
        gc::collect();
        gc::run_finalizers();
        // Everything queued by that cycle has completed, not merely started.
        EXPECT_EQ(g_slow_started.load(), g_slow_done.load()) << "run_finalizers() returned early";
        int now = g_slow_done.load();
        EXPECT_GE(now, done);
        done = now;
    }
    EXPECT_EQ(done, 15);
    // Nothing left in flight.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(g_slow_done.load(), done);
}

// ---- finalizers may allocate ----
std::atomic<int> g_alloc_fin_ok{0};
std::atomic<int> g_alloc_fin_bad{0};
void AllocatingFinalizer(Obj* o) {
    bool ok = o->magic == kMagic;
    for (int i = 0; i < 200 && ok; i++) {
        Obj* n = gc::make<Obj>();
        ok = n->id == 0 && n->magic == 0 && n->next.get() == nullptr;
        n->next = o;
        n->magic = kMagic;
    }
    (ok ? g_alloc_fin_ok : g_alloc_fin_bad).fetch_add(1);
}
__attribute__((noinline)) void MakeAllocating(int n) {
    for (int i = 0; i < n; i++) {
        Obj* o = gc::make<Obj>();
        o->magic = kMagic;
        gc::set_finalizer(o, &AllocatingFinalizer);
    }
}

TEST_F(GcFinalizer, FinalizersMayAllocate) {
    MakeAllocating(50);
    EXPECT_TRUE(CollectUntil([] { return g_alloc_fin_ok.load() + g_alloc_fin_bad.load() == 50; }));
    EXPECT_EQ(g_alloc_fin_bad.load(), 0);
    // What they allocated is garbage now; the heap goes back down.
    gc::collect();
    gc::MemStats s = ReadStats();
    EXPECT_EQ(s.Mallocs - s.Frees, s.HeapObjects);
}

// ---- large and array objects ----
std::atomic<int> g_big_ran{0};
void BigFinalizer(std::uint64_t* p) {
    if (p[0] == 0xB16 && p[(1 << 17) - 1] == 0xB16) g_big_ran.fetch_add(1);
}
struct Elem {
    gc::Ptr<Elem> p;
    std::uint64_t v;
};
std::atomic<int> g_arr_ran{0};
void ArrFinalizer(Elem* e) {
    if (e[99].v == 99) g_arr_ran.fetch_add(1);
}
__attribute__((noinline)) void MakeBigAndArray() {
    auto* big = gc::make_array<std::uint64_t>(1 << 17);  // 1 MiB
    big[0] = big[(1 << 17) - 1] = 0xB16;
    gc::set_finalizer(big, &BigFinalizer);
    Elem* arr = gc::make_array<Elem>(100);
    for (int i = 0; i < 100; i++) arr[i].v = static_cast<std::uint64_t>(i);
    arr[50].p = gc::make<Elem>();  // (not a self-reference: as in Go, that would keep it forever)
    gc::set_finalizer(arr, &ArrFinalizer);
}

TEST_F(GcFinalizer, LargeAndArrayObjects) {
    MakeBigAndArray();
    EXPECT_TRUE(CollectUntil([] { return g_big_ran.load() == 1 && g_arr_ran.load() == 1; }))
        << "large " << g_big_ran.load() << ", array " << g_arr_ran.load();
}

}  // namespace
