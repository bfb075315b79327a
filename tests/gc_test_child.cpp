// gc_test_child — a small program the diagnostics tests (test_gc_diag.cpp)
// run as a child process with GODEBUG / GOALLOC_DEBUG set, reading its stderr.
//
//   gc_test_child cycles N   N rounds of (16 MB of garbage, then collect()), with
//                            2 MB live; prints "numgc <NumGC> forced <NumForcedGC>"
//   gc_test_child cycles_ranges N   the same with a root range registered
//                            (add_roots), which makes mark start stop the world
//   gc_test_child vmflags [M [record]]  allocates M MiB (default 0) of large
//                            pointer-free objects, kept, then 8 MB of small
//                            ones (64 MB with record), and prints "vmflags
//                            <VmFlags of /proc/self/smaps>" for the mapping
//                            that holds the last one (with record: its span
//                            record)
//   gc_test_child resident [scan]
//                            allocates two 16 MiB pointer-free objects (with
//                            scan: conservatively scanned ones, whose heap
//                            bits the allocation writes at the span's tail)
//                            and, before touching the second, prints
//                            "resident R of N": how many of its pages are in
//                            memory (mincore)
//   gc_test_child reclaim    after an automatic cycle that left 600 dead
//                            spans under 600 live ones on the unswept lists
//                            (run it with GOALLOC_GC_BG_SWEEP=0), allocates
//                            one object of a size class with no span yet and
//                            prints "reclaim freed B swept S unswept U": the
//                            bytes the sweep freed and the spans it swept
//                            for that allocation, and the spans still unswept
//   gc_test_child collapse   allocates and writes 300 MiB of large objects
//                            (run it with GOGC=off), and prints
//                            "collapse rss R huge H": the first one's
//                            mapping's resident and huge-page KiB, once the
//                            arenas mapped before the switch to huge pages
//                            are collapsed (or after 20 s)
//   gc_test_child collapsemark the same heap, then cycles while the
//                            collapse runs; prints "collapsemark cycles C
//                            in_collapse T" (CollapseMark)
//   gc_test_child mallocgrow grows the heap through ga_malloc on a
//                            registered thread, then allocates collected
//                            objects of two layouts in one size class (heap
//                            bits written); prints "mixed ok"
//   gc_test_child fractional allocates garbage (64 KiB at a time, with 100 us
//                            of other work between) beside a live tree of 64 MiB
//                            until 4 cycles of the pacer's have run (at most
//                            20 s), and prints "fractional ncpu C frac F bg B
//                            idle I wall W assist A cycles N": the mark
//                            phases' MemStats figures over those cycles (ns)
//   gc_test_child fracbudget checks, from inside marks, that a thread's
//                            assists count against its fractional share;
//                            prints "fracbudget ncpu C trials T held H"
//   gc_test_child assistpark checks, from inside marks, that an assist that
//                            can pay its debt neither with credit nor with
//                            work waits for the mark to end; prints
//                            "assistpark trials T waited W" (AssistPark)
//   gc_test_child assistdebt checks, from inside marks, that a debt left from
//                            an earlier mark is not carried into a new one:
//                            a small assist returns within its own mark;
//                            prints "assistdebt trials T within W" (AssistDebt)
//   gc_test_child refillpast allocates, with 2 MiB live and GOGC=1, objects
//                            whose span holds more than the goal's headroom
//                            (each refill passes the goal); prints
//                            "refillpast allocated N cycles C" (RefillPast)
//   gc_test_child trigger [slow]
//                            allocates garbage (slow: at ~32 MB/s) beside a
//                            live list and prints
//                            "trigger samples N min P max Q": where the pacer
//                            put the trigger after each cycle, in percent of
//                            the way from the marked heap to the goal
//                            (TriggerBound)
//   gc_test_child spinner N  N collections while a second registered thread
//                            spins without polling; prints "spinner cycles N"
//   gc_test_child ckrecord   (run with GODEBUG=gccheckmark=1, GOGC=off) puts on
//                            its stack a live object's address, a free slot's
//                            (inside a span in use), an interior word of that
//                            slot and a non-heap value, runs a cycle, and
//                            checks what the first stop's scan recorded for
//                            the checkmark: the live address, 0 for the rest;
//                            prints "ok" or what differs
//   gc_test_child hide       hides a reachable object from the collector by
//                            moving the only pointer to it, without the write
//                            barrier, into a black object during marking (a
//                            simulated collector bug that checkmark mode must
//                            catch); prints "lost", "kept" or "inconclusive"
#include "gc_testutil.h"
#include "goalloc/goalloc.h"
#include "gcinternal.h"  // gcs: the sweep counters (reclaim)
#include "sys.h"       // thp_disabled (collapse)

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace {

using namespace gctest;

struct Node {
    gc::Ptr<Node> next;
    gc::Ptr<Node> f;
    std::uint64_t v;
};

__attribute__((noinline)) void Garbage(std::size_t bytes) {
    for (std::size_t done = 0; done < bytes; done += sizeof(Node)) {
        Node* n = gc::make<Node>();
        n->v = done;
    }
}

// A singly linked list of `bytes` of Nodes, to hold live.
Node* LiveList(std::size_t bytes) {
    gc::Root<Node> head;
    for (std::size_t i = 0; i < bytes / sizeof(Node); i++) {
        Node* x = gc::make<Node>();
        x->next = head.get();
        head = x;
    }
    return head.get();
}

int Cycles(int n) {
    gc::set_gc_percent(100);
    gc::Root<Node> live;  // on the stack: scanned either way
    live = LiveList(2 * gatest::MiB);
    for (int i = 0; i < n; i++) {
        Garbage(16 * gatest::MiB);
        gc::collect();
    }
    gc::MemStats s;
    gc::read_mem_stats(s);
    std::printf("numgc %u forced %u\n", s.NumGC, s.NumForcedGC);
    std::fflush(stdout);
    return 0;
}

// N collections while a second registered thread spins in a loop that
// neither allocates nor stores a pointer (it never polls): every stop of the
// world has to signal it. Prints "spinner cycles N".
int Spinner(int n) {
    std::atomic<bool> registered{false}, stop{false};
    std::thread spinner([&] {
        gc::Root<Node> mine(gc::make<Node>());  // registers this thread
        registered.store(true);
        volatile std::uint64_t x = 0;
        while (!stop.load(std::memory_order_relaxed)) x = x + 1;
    });
    while (!registered.load()) std::this_thread::yield();
    for (int i = 0; i < n; i++) gc::collect();
    stop.store(true);
    spinner.join();
    std::printf("spinner cycles %d\n", n);
    return 0;
}

constexpr std::uint64_t kMagic = 0x5EC2E7;
constexpr std::size_t kChain = 400000;

// Root -> n0 -> n1 -> ... -> tail, tail->f = the object to hide. The tail is
// marked last, long after marking starts.
__attribute__((noinline)) Hidden BuildChain(gc::Root<Node>& root) {
    Node* tail = gc::make<Node>();
    Node* hidden = gc::make<Node>();
    hidden->v = kMagic;
    tail->f = hidden;
    Node* head = tail;
    for (std::size_t i = 0; i < kChain; i++) {
        Node* n = gc::make<Node>();
        n->next = head;
        head = n;
    }
    root = head;
    return Hidden(tail);
}

// Allocates A (black: allocated while marking), moves tail->f into A->f with
// raw stores (no barrier) and roots A.
__attribute__((noinline)) void Move(Hidden tail_h, gc::Root<Node>& a_root) {
    auto* tail = static_cast<Node*>(tail_h.get());
    Node* a = gc::make<Node>();
    void* b;
    std::memcpy(&b, static_cast<void*>(&tail->f), sizeof b);
    std::memcpy(static_cast<void*>(&a->f), &b, sizeof b);
    std::memset(static_cast<void*>(&tail->f), 0, sizeof b);
    a_root = a;
}

__attribute__((noinline)) bool HiddenSurvived(gc::Root<Node>& a_root) {
    void* b;
    std::memcpy(&b, static_cast<void*>(&a_root->f), sizeof b);
    return b != nullptr && gc::base_of(b) == b && static_cast<Node*>(b)->v == kMagic;
}

// Objects 2i are kept (so their spans stay in use), objects 2i+1 dropped:
// after two cycles their slots are free. Returns one free slot, hidden.
__attribute__((noinline)) Hidden MakeFreeSlot(gc::Root<Node>* keep, std::size_t n) {
    std::vector<Hidden> dropped;
    for (std::size_t i = 0; i < n; i++) {
        keep[i] = gc::make<Node>();
        dropped.emplace_back(gc::make<Node>());
    }
    ScrubStack();
    gc::collect();
    gc::collect();
    if (gc::base_of(keep[0].get()) != keep[0].get()) return Hidden();  // (a kept object lost: no test)
    for (const Hidden& h : dropped)
        if (gc::base_of(h.get()) == nullptr) return h;
    return Hidden();
}

int CheckmarkRecord() {
    constexpr std::size_t kKeep = 64;
    auto* keep = new gc::Root<Node>[kKeep];
    Hidden free_h = MakeFreeSlot(keep, kKeep);
    if (free_h.null()) {
        std::printf("inconclusive (no free slot: every dropped object still allocated)\n");
        return 0;
    }
    static int not_heap = 0;
    auto f = reinterpret_cast<std::uintptr_t>(free_h.get());
    volatile std::uintptr_t words[4] = {reinterpret_cast<std::uintptr_t>(keep[0].get()), f, f + 8,
                                        reinterpret_cast<std::uintptr_t>(&not_heap)};
    gc::collect();
    gc::GcThread* t = gc::tls_gc_thread;
    if (t == nullptr || t->ck_copy == nullptr) {
        std::printf("no record of this thread's stack (checkmark mode off?)\n");
        return 1;
    }
    const std::uintptr_t want[4] = {words[0], 0, 0, 0};
    const char* what[4] = {"a live object", "a free slot", "a free slot's interior", "a non-heap value"};
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        auto a = reinterpret_cast<std::uintptr_t>(&words[i]);
        std::size_t idx = (a - t->ck_sp) / 8;
        if (a < t->ck_sp || idx >= t->ck_words - 24) {
            std::printf("word %d (%s) at %#lx is outside the record [%#lx, +%zu words)\n", i, what[i],
                        static_cast<unsigned long>(a), static_cast<unsigned long>(t->ck_sp), t->ck_words - 24);
            bad = 1;
            continue;
        }
        if (t->ck_copy[idx] != want[i]) {
            std::printf("word %d (%s): recorded %#lx, want %#lx\n", i, what[i],
                        static_cast<unsigned long>(t->ck_copy[idx]), static_cast<unsigned long>(want[i]));
            bad = 1;
        }
    }
    if (gc::base_of(free_h.get()) != nullptr) {
        std::printf("the free slot was allocated meanwhile: inconclusive\n");
        return 0;
    }
    if (!bad) std::printf("ok\n");
    return bad;
}

int Hide() {
    gc::set_gc_percent(-1);
    auto* chain = new gc::Root<Node>();
    auto* a_root = new gc::Root<Node>();
    Hidden tail = BuildChain(*chain);
    gc::collect();  // settle: everything swept
    ScrubStack();
    std::atomic<bool> go{false};
    std::thread collector([&] {
        gc::register_thread();
        while (!go.load()) std::this_thread::yield();
        gc::collect();
    });
    go.store(true);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (__atomic_load_n(&gc::detail::write_barrier_enabled, __ATOMIC_ACQUIRE) == 0) {
        if (std::chrono::steady_clock::now() > until) {
            std::printf("inconclusive (marking never seen)\n");
            collector.join();
            return 0;
        }
    }
    // Marking has started; with mark start by handshakes this thread
    // allocates black once it has scanned its own stack, at one of its next
    // polls (every allocation polls): wait for that, so that A is black.
    while (!gc::detail::thread_allocates_black()) {
        (void)gc::make<Node>();
        if (std::chrono::steady_clock::now() > until) {
            std::printf("inconclusive (black allocation never seen)\n");
            collector.join();
            return 0;
        }
    }
    Move(tail, *a_root);
    ScrubStack();
    collector.join();  // a checkmark failure aborts in here
    bool kept = HiddenSurvived(*a_root);
    std::printf("%s\n", kept ? "kept" : "lost");
    std::fflush(stdout);
    return 0;
}

// Calls f(line) for each line of /proc/self/smaps that describes the mapping
// holding address a (its Rss:, VmFlags: and other fields); false if none
// holds a, or smaps cannot be read. f returns false to stop early.
template <class F>
bool ForMappingOf(std::uintptr_t a, F f) {
    std::FILE* file = std::fopen("/proc/self/smaps", "r");
    if (file == nullptr) return false;
    char line[512];
    bool inside = false, found = false;
    while (std::fgets(line, sizeof line, file) != nullptr) {
        unsigned long lo, hi;
        if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && std::strchr(line, '-') < std::strchr(line, ' ')) {
            inside = a >= lo && a < hi;
            found = found || inside;
        } else if (inside && !f(line)) {
            break;
        }
    }
    std::fclose(file);
    return found;
}

// The kernel's flags for the mapping holding address a ("hg": MADV_HUGEPAGE):
// the last small object's, or with `record`, its span record's (after 64 MB
// of small objects, so that the records have outgrown their first chunk).
int VmFlags(int large_mb, bool record) {
    static gc::Root<char> keep[1024];
    for (int i = 0; i < large_mb && i < 1024; i++) keep[i] = static_cast<char*>(gc::alloc(1 << 20, false));
    static gc::Root<Node> live;
    Node* last = nullptr;
    for (std::size_t done = 0; done < (record ? 64u << 20 : 8u << 20); done += sizeof(Node)) {
        last = gc::make<Node>();
        last->next = live.get();
        live = last;
    }
    auto a = reinterpret_cast<std::uintptr_t>(last);
    if (record) a = reinterpret_cast<std::uintptr_t>(goalloc::span_of(a));
    bool printed = false;
    ForMappingOf(a, [&](const char* line) {
        if (std::strncmp(line, "VmFlags:", 8) != 0) return true;
        std::printf("vmflags%s", line + 8);
        printed = true;
        return false;
    });
    if (printed) return 0;
    std::printf("no mapping found for %p\n", static_cast<void*>(last));
    return 4;
}

// What the heap mapped before it switched to huge pages is collapsed into
// huge pages afterwards (MHeap::collapse_step, on the collector thread between
// cycles): 300 MiB of large objects, each written when allocated (past
// the 256 MiB switch; run with GOGC=off so that all stay mapped). Prints
// "collapse rss R huge H" (KiB) for the mapping that holds the first one,
// once H has reached 90% of R or after 20 s; "collapse unsupported"
// if this kernel has no MADV_COLLAPSE, or huge pages are set to "never".
// Whether this kernel can collapse (MADV_COLLAPSE, Linux 6.1: it accepts it
// on a mapping of its own; an unknown advice is EINVAL) and huge pages are
// not set to "never" (sys::collapse leaves that alone). If not, prints
// "collapse unsupported".
bool CollapseSupported() {
    constexpr std::size_t k = std::size_t{4} << 20;
    void* m = mmap(nullptr, k, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    auto b = (reinterpret_cast<std::uintptr_t>(m) + (std::uintptr_t{2} << 20) - 1) & ~((std::uintptr_t{2} << 20) - 1);
    static_cast<volatile char*>(reinterpret_cast<void*>(b))[0] = 1;
    bool ok = madvise(reinterpret_cast<void*>(b), std::size_t{2} << 20, 25 /* MADV_COLLAPSE */) == 0 || errno != EINVAL;
    munmap(m, k);
    if (!ok || goalloc::sys::thp_disabled()) {
        std::printf("collapse unsupported\n");
        return false;
    }
    return true;
}

// 300 MiB of large objects, each written when allocated, so that the first
// 256 MiB are in memory on 4 KiB pages before the switch to huge pages.
static gc::Root<char> collapse_keep[300];
void FillPastHugePageSwitch() {
    for (auto& k : collapse_keep) {
        k = static_cast<char*>(gc::alloc(1 << 20, false));
        std::memset(k.get(), 1, 1 << 20);
    }
}

int Collapse() {
    if (!CollapseSupported()) return 0;
    FillPastHugePageSwitch();
    auto a = reinterpret_cast<std::uintptr_t>(collapse_keep[0].get());
    unsigned long rss = 0, huge = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        bool found = ForMappingOf(a, [&](const char* line) {
            std::sscanf(line, "Rss: %lu kB", &rss);
            std::sscanf(line, "AnonHugePages: %lu kB", &huge);
            return true;
        });
        if (!found) return 3;
        if (huge * 10 >= rss * 9 || std::chrono::steady_clock::now() > until) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::printf("collapse rss %lu huge %lu\n", rss, huge);
    return 0;
}

// Cycles while the collapse runs: 300 MiB past the huge-page switch (as
// Collapse; run with GOGC=off), a list of 512K small objects live (a mark of
// 10 ms or more), then collections 5 ms apart while the collapse is in
// progress (at most 100). Prints "collapsemark cycles C in_collapse T": the
// cycles run while it was, and the mark terminations that began while a
// huge page was being collapsed (terminations_in_collapse).
int CollapseMark() {
    if (!CollapseSupported()) return 0;
    FillPastHugePageSwitch();
    static gc::Root<Node> list;
    for (int i = 0; i < (1 << 19); i++) {
        Node* n = gc::make<Node>();
        n->next = list.get();
        list = n;
    }
    for (int i = 0; i < 2000 && !goalloc::mheap.collapsing(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    int cycles = 0;
    while (goalloc::mheap.collapsing() && cycles < 100) {
        gc::collect();
        cycles++;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::printf("collapsemark cycles %d in_collapse %llu\n", cycles,
                static_cast<unsigned long long>(gc::terminations_in_collapse.load()));
    return 0;
}

// A registered thread that grows the heap through malloc (ga_malloc) with
// huge pages on, then allocates collected objects of two types that share a
// size class (so the allocation writes heap bits): the malloc growth is left
// pending for the thread's next populate step, and must not be mistaken for
// the memory of the span being written (debug builds assert on the latter).
// Prints "mixed ok".
struct Other {  // Node's size (one size class), pointers elsewhere
    std::uint64_t x;
    gc::Ptr<Node> a, b;
};
static_assert(sizeof(Other) == sizeof(Node));
int MallocThenMixed() {
    (void)gc::make<Node>();  // registers this thread
    void* m = ga_malloc(std::size_t{8} << 20);
    if (m == nullptr) return 3;
    std::memset(m, 1, 4096);
    static gc::Root<Node> n;
    static gc::Root<Other> o;
    for (int i = 0; i < 1000; i++) {
        n = gc::make<Node>();
        o = gc::make<Other>();
    }
    ga_free(m);
    std::printf("mixed ok\n");
    return 0;
}

// Pages of a fresh large object already in memory before the program
// touches it (alloc_large writes nothing into fresh pointer-free memory; a
// scanned object's heap bits it writes only once the growth is faulted in:
// debug builds assert that in write_heap_bits).
// The second of two: the first may begin in free pages of a growth made
// before this thread registered (the collector's start), which nobody
// faulted in; the second lies in growths this thread made.
int Resident(bool scan) {
    constexpr std::size_t kBytes = std::size_t{16} << 20;
    static gc::Root<unsigned char> first;
    first = static_cast<unsigned char*>(gc::alloc(kBytes, scan));
    auto* p = static_cast<unsigned char*>(gc::alloc(kBytes, scan));
    long pg = sysconf(_SC_PAGESIZE);
    auto lo = reinterpret_cast<std::uintptr_t>(p) & ~static_cast<std::uintptr_t>(pg - 1);
    std::size_t n = (reinterpret_cast<std::uintptr_t>(p) + kBytes - lo + pg - 1) / pg;
    std::vector<unsigned char> vec(n);
    if (mincore(reinterpret_cast<void*>(lo), n * pg, vec.data()) != 0) {
        std::perror("mincore");
        return 3;
    }
    std::size_t r = 0;
    for (unsigned char v : vec) r += v & 1;
    std::printf("resident %zu of %zu\n", r, n);
    return 0;
}

// Go's mheap.reclaim: the heap's first span for a new size class is taken
// from dead spans' pages, swept for it, however many live spans come first
// on the unswept lists (binary_trees: its long-lived tree's spans).
constexpr std::size_t kLiveDeadSpans = 600;  // of each
constexpr std::size_t kNodesPerSpan = 8192 / sizeof(Node);

__attribute__((noinline)) void MakeGarbage() {
    for (std::size_t i = 0; i < kLiveDeadSpans * kNodesPerSpan; i++) gc::make<Node>();
}

int Reclaim() {
    namespace gi = goalloc::gc;
    gc::set_gc_percent(-1);
    // Dead spans first, then live ones: full spans go onto their mcentral
    // list as they fill, and the list is popped newest first.
    MakeGarbage();
    ScrubStack();
    static gc::Root<Node> live;
    for (std::size_t i = 0; i < kLiveDeadSpans * kNodesPerSpan; i++) {
        Node* n = gc::make<Node>();
        n->next = live.get();
        live = n;
    }
    // An automatic cycle (a forced one sweeps everything before collect()
    // returns), then no more.
    const std::uint32_t c0 = gi::gcs.cycles.load(std::memory_order_acquire);
    gc::set_gc_percent(100);
    for (int ms = 0; gi::gcs.cycles.load(std::memory_order_acquire) == c0; ms++) {
        if (ms > 20000) {
            std::printf("no cycle started\n");
            return 3;
        }
        usleep(1000);
    }
    gc::set_gc_percent(-1);
    const std::int64_t un0 = gi::gcs.unswept.load(std::memory_order_relaxed);
    const std::uint64_t freed0 = gi::gcs.freed_bytes.load(std::memory_order_relaxed);
    static gc::Root<char> probe;
    probe = static_cast<char*>(gc::alloc(2048, false));
    const std::int64_t un1 = gi::gcs.unswept.load(std::memory_order_relaxed);
    std::printf("reclaim freed %llu swept %lld unswept %lld\n",
                static_cast<unsigned long long>(gi::gcs.freed_bytes.load(std::memory_order_relaxed) - freed0),
                static_cast<long long>(un0 - un1), static_cast<long long>(un1));
    return 0;
}

Node* Tree(int depth) {
    Node* n = gc::make<Node>();
    if (depth > 0) {
        n->next = Tree(depth - 1);
        n->f = Tree(depth - 1);
    }
    return n;
}

// An allocating thread while the pacer's cycles run (no collect()): one
// registered mutator, so with two CPUs or more one is idle while marking.
// The live heap is a tree (2^21 nodes, 64 MiB in 32-byte slots): marking it
// has grey objects to share, where a single list has one at a time.
int Fractional() {
    gc::set_gc_percent(100);
    gc::Root<Node> live;
    live = Tree(20);
    gc::MemStats s0, s;
    gc::read_mem_stats(s0);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    // The program's own work between allocations (a 100 us spin per 64 KiB
    // allocated): a program that only allocates assists for more than
    // its whole share, and leaves no room for fractional marking.
    const auto spin = std::chrono::microseconds(100);
    do {
        Garbage(64 << 10);
        for (auto t = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t < spin;) {
        }
        gc::read_mem_stats(s);
    } while (s.NumGC < s0.NumGC + 4 && std::chrono::steady_clock::now() < until);
    std::printf("fractional ncpu %d frac %llu bg %llu idle %llu wall %llu assist %llu cycles %u\n", goalloc::gc::ncpu(),
                static_cast<unsigned long long>(s.MarkFractionalNs - s0.MarkFractionalNs),
                static_cast<unsigned long long>(s.MarkBackgroundNs - s0.MarkBackgroundNs),
                static_cast<unsigned long long>(s.MarkIdleNs - s0.MarkIdleNs),
                static_cast<unsigned long long>(s.MarkWallNs - s0.MarkWallNs),
                static_cast<unsigned long long>(s.MarkCycleAssistNs - s0.MarkCycleAssistNs), s.NumGC - s0.NumGC);
    std::fflush(stdout);
    return 0;
}

// For the white-box modes below: the start of the automatic cycle's mark
// under way, if it is not `last` and it began at least `min_ns` ago with
// black allocation on (stacks scanned); 0 otherwise.
std::uint64_t MarkUnderWay(std::uint64_t last, std::uint64_t min_ns) {
    namespace gi = goalloc::gc;
    const std::uint64_t start = gi::gcs.mark_start.load(std::memory_order_relaxed);
    if (start == last || gi::gcs.phase.load(std::memory_order_acquire) != gi::kPhaseMark ||
        gi::gcs.blacken.load(std::memory_order_acquire) == 0 || gi::nanotime() < start + min_ns)
        return 0;
    return start;
}

// Runs trial(t, start) for the white-box modes below, inside automatic
// cycles' marks (a 64 MiB tree live, 256 KiB of garbage between tries): in
// each mark under way at least min_ns that no trial has used yet, until
// `want` trials counted (trial returns whether it counts) or 20 s passed.
template <class F>
int InMarks(int want, std::uint64_t min_ns, F trial) {
    namespace gi = goalloc::gc;
    gc::set_gc_percent(100);
    gc::Root<Node> live;
    live = Tree(20);
    gi::GcThread* t = gi::current_thread();
    int trials = 0;
    std::uint64_t last = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (trials < want && std::chrono::steady_clock::now() < until) {
        Garbage(256 << 10);
        const std::uint64_t start = MarkUnderWay(last, min_ns);
        if (start == 0) continue;
        last = start;
        if (trial(t, start)) trials++;
    }
    return trials;
}

// White-box: 2 ms or more into a mark, this thread calls fractional_mark
// itself, twice per trial: first with its account saying its assists took
// more than its share (it must not drain), then with nothing done (it must
// drain: that makes the trial count, as fractional marking could go on at
// that moment). Prints "fracbudget ncpu C trials T held H" (H: trials whose
// first call drained nothing).
int FracBudget() {
    namespace gi = goalloc::gc;
    int held = 0;
    const int trials = InMarks(8, 2000000, [&](gi::GcThread* t, std::uint64_t start) {
        if (gi::gcs.frac_ppm.load(std::memory_order_relaxed) == 0) return false;
        t->frac_start = start;
        t->frac_ns = 0;
        t->frac_chunk_ns = 0;
        t->frac_assist_ns = gi::nanotime() - start;  // assists: all of its time, four times its share
        gi::fractional_mark(t);
        const bool drained_over = t->frac_ns != 0;
        t->frac_ns = 0;
        t->frac_assist_ns = 0;
        gi::fractional_mark(t);
        if (t->frac_ns == 0) return false;  // could not mark now (the mark ending, a collapse)
        if (!drained_over) held++;
        return true;
    });
    std::printf("fracbudget ncpu %d trials %d held %d\n", gc::ncpu(), trials, held);
    std::fflush(stdout);
    return 0;
}

// White-box: this thread charges itself an assist for more allocation than
// any mark could pay for (assist_alloc with 2^40 bytes). It marks what it
// can, then must wait for background credit or, as here, for the mark to
// end (Go's parked assists), never return with the debt forgiven while the
// mark goes on. Prints "assistpark trials T waited W" (W: returns after the
// mark ended).
int AssistPark() {
    namespace gi = goalloc::gc;
    int waited = 0;
    bool debt_left = false;
    const int trials = InMarks(5, 0, [&](gi::GcThread* t, std::uint64_t start) {
        const std::uint32_t n = gi::gcs.cycles.load(std::memory_order_acquire);
        if (gi::gcs.mark_start.load(std::memory_order_relaxed) != start) return false;  // it ended meanwhile
        gi::assist_alloc(t, std::uint64_t{1} << 40);
        if (gi::gcs.cycles.load(std::memory_order_acquire) != n) waited++;
        if (t->assist_credit < 0) debt_left = true;
        return true;
    });
    if (debt_left) {
        std::printf("assistpark returned with its debt left\n");
        return 1;
    }
    std::printf("assistpark trials %d waited %d\n", trials, waited);
    std::fflush(stdout);
    return 0;
}

// White-box: in each mark, this thread is given an unpayable debt dated to
// an earlier mark (as a thread parked in a mark that ended would have), then
// allocates a little. Prints "assistdebt trials T within W" (W: calls that
// returned with the same mark still under way, the old debt dropped; with it
// kept, the thread would drain what it could and wait for the mark to end).
int AssistDebt() {
    namespace gi = goalloc::gc;
    int within = 0;
    const int trials = InMarks(5, 0, [&](gi::GcThread* t, std::uint64_t start) {
        t->assist_mark = start - 1;  // an earlier mark's
        t->assist_credit = -(std::int64_t{1} << 40);
        gi::assist_alloc(t, 64);
        if (gi::gcs.mark_start.load(std::memory_order_relaxed) == start &&
            gi::gcs.phase.load(std::memory_order_acquire) == gi::kPhaseMark && t->assist_mark == start &&
            t->assist_credit > -(std::int64_t{1} << 30))
            within++;
        return true;
    });
    std::printf("assistdebt trials %d within %d\n", trials, within);
    std::fflush(stdout);
    return 0;
}

// A refill past the goal: with 2 MiB live and GOGC=1 (headroom ~21 KB), each
// span of 27,264-byte objects (3 to an 80 KiB span) puts the heap past the
// goal, so each refill makes this thread wait for a cycle. It must still get
// its object every time. Prints "refillpast allocated N cycles C".
int RefillPast() {
    gc::set_gc_percent(1);
    gc::Root<Node> live;
    live = LiveList(2 * gatest::MiB);
    gc::collect();
    const std::uint32_t c0 = ReadStats().NumGC;
    int n = 0;
    for (; n < 300; n++) {
        auto* p = static_cast<unsigned char*>(gc::alloc(27000, false));
        if (p == nullptr) break;
        p[0] = 1;
        p[26999] = 2;
    }
    std::printf("refillpast allocated %d cycles %u\n", n, ReadStats().NumGC - c0);
    std::fflush(stdout);
    return 0;
}

// Where the pacer put the trigger: allocates garbage beside 8 MiB live, with
// GOGC=100, and after each of 8 automatic cycles (from the third) reads the
// trigger, the goal and the marked heap the cycle left, and prints "trigger
// samples N min P max Q": the trigger's position, in percent of the way from
// the marked heap to the goal (GOALLOC_GC_TRIGGER_MIN bounds it from below,
// Go's 95% from above). slow: 64 KiB at a time with 2 ms of sleep between
// (~32 MB a second: a mark of the 8 MiB sees little allocation), and 4
// samples from the tenth cycle (the cons/mark estimate is the largest of
// the last five marks', and those while the live list was built allocated
// fast).
int TriggerBound(bool slow) {
    namespace gi = goalloc::gc;
    gc::set_gc_percent(100);
    gc::Root<Node> live;
    live = LiveList(8 * gatest::MiB);
    int n = 0;
    double lo = 1e9, hi = -1e9;
    std::uint32_t seen = gi::gcs.cycles.load(std::memory_order_acquire);
    const auto t0 = std::chrono::steady_clock::now();
    const int want = slow ? 4 : 8;
    const std::uint32_t first = slow ? 10 : 3;
    while (n < want && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
        if (slow) {
            Garbage(64 << 10);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        } else {
            Garbage(gatest::MiB);
        }
        const std::uint32_t c = gi::gcs.cycles.load(std::memory_order_acquire);
        if (c == seen || c < first || gi::gcs.phase.load(std::memory_order_acquire) != gi::kPhaseOff) continue;
        const std::uint64_t trig = gi::gcs.trigger.load(std::memory_order_relaxed);
        const std::uint64_t goal = gi::gcs.goal.load(std::memory_order_relaxed);
        const std::uint64_t marked = gi::gcs.heap_marked.load(std::memory_order_relaxed);
        // A snapshot of one cycle's figures: no cycle ended or began between.
        if (gi::gcs.cycles.load(std::memory_order_acquire) != c ||
            gi::gcs.phase.load(std::memory_order_acquire) != gi::kPhaseOff || goal <= marked)
            continue;
        seen = c;
        const double pos = 100.0 * static_cast<double>(trig - marked) / static_cast<double>(goal - marked);
        lo = std::min(lo, pos);
        hi = std::max(hi, pos);
        n++;
    }
    std::printf("trigger samples %d min %.2f max %.2f\n", n, lo, hi);
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "cycles" && argc > 2) return Cycles(std::atoi(argv[2]));
    if (mode == "assistdebt") return AssistDebt();
    if (mode == "refillpast") return RefillPast();
    if (mode == "trigger") return TriggerBound(argc > 2 && std::string(argv[2]) == "slow");
    if (mode == "cycles_ranges" && argc > 2) {
        static void* range[4] = {};
        gc::add_roots(range, sizeof range);
        return Cycles(std::atoi(argv[2]));
    }
    if (mode == "hide") return Hide();
    if (mode == "ckrecord") return CheckmarkRecord();
    if (mode == "vmflags") return VmFlags(argc > 2 ? std::atoi(argv[2]) : 0, argc > 3 && std::string(argv[3]) == "record");
    if (mode == "resident") return Resident(argc > 2 && std::string(argv[2]) == "scan");
    if (mode == "reclaim") return Reclaim();
    if (mode == "spinner" && argc > 2) return Spinner(std::atoi(argv[2]));
    if (mode == "collapse") return Collapse();
    if (mode == "collapsemark") return CollapseMark();
    if (mode == "mallocgrow") return MallocThenMixed();
    if (mode == "fractional") return Fractional();
    if (mode == "fracbudget") return FracBudget();
    if (mode == "assistpark") return AssistPark();
    std::fprintf(stderr, "usage: gc_test_child cycles N | cycles_ranges N | spinner N | hide | vmflags [M [record]] | resident [scan] | reclaim | collapse | collapsemark | mallocgrow | fractional | fracbudget | assistpark\n");
    return 2;
}
