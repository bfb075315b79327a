// goalloc/gc.hpp — the garbage-collected heap: Go's collector for C++.
//
//   #include <goalloc/gc.hpp>
//   namespace gc = goalloc::gc;
//   struct Node { gc::Ptr<Node> left, right; int v; };
//   Node* n = gc::make<Node>();          // zeroed, then constructed
//   n->left = gc::make<Node>();          // a Ptr store: write barrier
//   gc::Root<Node> keep(n);              // a root outside the collected heap
//   gc::collect();                       // runtime.GC()
//
// Rules (gc/README.md explains why):
//   * A collected object is found from the stacks and registers of registered
//     threads (scanned conservatively, interior pointers count), from Root<T>s,
//     from ranges added with add_roots(), and from Ptr<T> fields of reachable
//     collected objects. Raw T* fields inside a collected object are NOT traced
//     (use Ptr<T>); pointers kept in malloc'd memory are not traced (use Root<T>).
//   * make<T> learns T's layout (where its Ptr<> members are) the first time it
//     constructs a T; Ptr members must be ordinary members (constructed by every
//     constructor of T), not placed conditionally. Types without Ptr members are
//     "noscan": never scanned. make_conservative<T> scans every word instead.
//   * Destructors of collected objects never run; use set_finalizer.
//   * A thread registers at its first make/alloc (or register_thread()) and
//     leaves at exit; a thread that only reads collected pointers must register.
//   * Objects may be aligned to at most 16 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "goalloc.h"

namespace goalloc {
// Nosuspend regions (alloc/lock.h): the collector never stops a thread inside one.
extern __thread std::uint32_t tls_nosuspend
    __attribute__((tls_model("initial-exec"), visibility("default")));
extern __thread std::uint32_t tls_suspend_pending
    __attribute__((tls_model("initial-exec"), visibility("default")));
extern void (*suspend_hook)() __attribute__((visibility("default")));
extern std::uint32_t gc_stop_requested __attribute__((visibility("default")));
}  // namespace goalloc

namespace goalloc::gc {

// ---- Go's runtime.MemStats (the subset the collector keeps) ----
struct MemStats {
    std::uint64_t Alloc;          // = HeapAlloc
    std::uint64_t TotalAlloc;     // cumulative bytes allocated
    std::uint64_t Sys;            // bytes of the collected heap obtained from the OS
    std::uint64_t Mallocs;        // cumulative objects allocated
    std::uint64_t Frees;          // cumulative objects freed by the sweeper
    std::uint64_t HeapAlloc;      // bytes of allocated objects (reachable or not yet swept)
    std::uint64_t HeapSys;        // bytes in spans of the collected heap + its idle share
    std::uint64_t HeapIdle;       // HeapSys - HeapInuse
    std::uint64_t HeapInuse;      // bytes in in-use spans
    std::uint64_t HeapReleased;   // bytes returned to the OS
    std::uint64_t HeapObjects;    // allocated objects
    std::uint64_t NextGC;         // heap goal of the next cycle
    std::uint64_t LastGC;         // end of the last cycle, ns since the Unix epoch
    std::uint64_t PauseTotalNs;   // cumulative pause time (stops of the world; mark start's handshake, see MaxPauseNs)
    std::uint64_t PauseNs[256];   // recent pauses, ring: PauseNs[(NumGC+255)%256] is the last
    std::uint64_t PauseEnd[256];  // their end times, ns since the Unix epoch
    std::uint32_t NumGC;          // completed cycles
    std::uint32_t NumForcedGC;    // cycles forced by collect()
    double GCCPUFraction;         // collector CPU time / available CPU time since start
    // goalloc extras
    // Longest pause since start: a stop of the world (mark termination), or
    // mark start's handshake — no stop; the longest one thread was held
    // scanning its own stack.
    std::uint64_t MaxPauseNs;
    std::uint64_t MarkAssistNs;   // cumulative time allocating threads spent assisting (marking, as
                                  // Go's gcAssistTime: not waiting past the hard goal)
    // Concurrent mark phases of completed cycles, cumulative (Go's
    // runtime/metrics /cpu/classes/gc/mark/*): their wall time (from the
    // phase's start, mark start's handshakes and root scan included);
    // background marking within its share (Go's dedicated and fractional
    // workers: with idle CPUs, all of the allocating threads' fractional
    // marking and the worker's time up to the idle CPUs' fractional share;
    // otherwise the worker's time, with any fractional marking, up to 25% of
    // the CPUs; gc/README.md, "CPU accounting"); background marking beyond
    // that, on CPUs no mutator wanted (Go's idle workers, which Go leaves out
    // of GCCPUFraction as "free"); and the assists of those cycles (the wall
    // time of their marking, as MarkAssistNs).
    std::uint64_t MarkWallNs;
    std::uint64_t MarkBackgroundNs;
    std::uint64_t MarkIdleNs;
    std::uint64_t MarkCycleAssistNs;
    // Of MarkBackgroundNs + MarkIdleNs: the part allocating threads marked
    // (Go's fractional workers on the Ps that run the program; wall time of
    // their marking, as MarkAssistNs). A mark in which CPUs are idle has the
    // background worker flat out on one and each allocating thread marking
    // for the fractional share of its time (gc/README.md).
    std::uint64_t MarkFractionalNs;
};

// ---- control ----
void collect();                                 // a full cycle, then finish sweeping (runtime.GC)
int set_gc_percent(int percent);                // debug.SetGCPercent: <0 = off; returns previous
std::int64_t set_memory_limit(std::int64_t b);  // debug.SetMemoryLimit: <0 only queries; returns previous
void read_mem_stats(MemStats& out);             // runtime.ReadMemStats (exact at a quiet point)
void register_thread();                         // idempotent
void unregister_thread();                       // before a registered thread stops touching the heap
// A range of memory scanned conservatively as a root, at every cycle's first
// stop-the-world (keep it small: it adds to the pause). remove_roots with the same start.
void add_roots(const void* start, std::size_t bytes);
void remove_roots(const void* start);
// Is p (any interior address) inside a live collected object? Returns its start or nullptr.
void* base_of(const void* p);
// Size of the collected object holding p (its size class), 0 if none.
std::size_t size_of(const void* p);

// RAII registration of the current thread.
struct ThreadScope {
    ThreadScope() { register_thread(); }
    ~ThreadScope() { unregister_thread(); }
    ThreadScope(const ThreadScope&) = delete;
    ThreadScope& operator=(const ThreadScope&) = delete;
};

// ---- internals the inline API below needs ----
namespace detail {

// What make<T> knows of T's layout.
enum : std::uint8_t { kLayoutUnknown = 0, kLayoutNoscan = 1, kLayoutPrecise = 2, kLayoutConservative = 3 };
struct TypeInfo {
    std::uint8_t kind;           // kLayout*
    std::uint32_t words;         // size of T in words (object size / 8, rounded up)
    const std::uint64_t* mask;   // words bits: 1 = this word is a Ptr<> (kind Precise)
    // Span class of one object of the type, learned at its first alloc_one
    // (0: not yet, or none: tiny and large objects take the general path).
    std::uint8_t spc = 0;
    // Set by the one thread that publishes mask (several threads can learn
    // the layout at once; an exchange here, not a CAS on mask, because
    // ThreadSanitizer counts a failed CAS as a write).
    std::uint8_t claimed = 0;
};
// The probe: while make<T> constructs the first T, Ptr<> constructors inside
// [base, base+len) record their word offsets here.
struct Probe {
    std::uintptr_t base;
    std::uintptr_t len;
    std::uint64_t* bits;   // len/8 bits
    std::uint32_t found;
};
extern __thread Probe tls_probe __attribute__((tls_model("initial-exec"), visibility("default")));
// Nonzero while the write barrier is on (marking).
extern std::uint32_t write_barrier_enabled __attribute__((visibility("default")));

GA_API void* alloc(std::size_t size, std::size_t count, const TypeInfo* ti);  // zeroed; aborts on OOM
// One object of a type whose size is always `size` (make<T>): the fast path.
GA_API void* alloc_one(std::size_t size, TypeInfo* ti);
GA_API void* alloc_first(std::size_t size, std::size_t count, TypeInfo* ti, Probe* saved);
GA_API void learn_layout(TypeInfo* ti, Probe* saved);
GA_API void barrier_slow(void* const* slot, void* newval);
// Whether this thread allocates black now: marking is on and its stack has
// been scanned this cycle (its part of mark start's handshake). For tests.
GA_API bool thread_allocates_black();
GA_API void root_register(void* node);
GA_API void root_unregister(void* node);
GA_API void set_finalizer_raw(void* obj, void (*fn)(void*, void*), void* arg);

inline void note_slot(const void* slot) {
    Probe& p = tls_probe;
    if (__builtin_expect(p.len == 0, 1)) return;  // no probe: one load and a branch
    std::uintptr_t off = reinterpret_cast<std::uintptr_t>(slot) - p.base;
    if (off < p.len) {
        std::uintptr_t w = off >> 3;
        p.bits[w >> 6] |= std::uint64_t{1} << (w & 63);
        p.found = 1;
    }
}

template <class T>
inline TypeInfo type_info = {
    std::is_class_v<T> || std::is_union_v<T> ? kLayoutUnknown : kLayoutNoscan,
    static_cast<std::uint32_t>((sizeof(T) + 7) / 8), nullptr};

// Rounded so that arrays of T keep T's alignment (at most 16).
template <class T>
inline constexpr std::size_t elem_size = sizeof(T);

template <class T>
T* make_n(std::size_t n) {
    static_assert(alignof(T) <= 16, "collected objects are at most 16-byte aligned");
    TypeInfo* ti = &type_info<T>;
    if (__builtin_expect(__atomic_load_n(&ti->kind, __ATOMIC_ACQUIRE) != kLayoutUnknown, 1)) {
        void* p = alloc(sizeof(T), n, ti);
        if constexpr (!std::is_trivially_default_constructible_v<T>)
            for (std::size_t i = 0; i < n; i++) ::new (static_cast<T*>(p) + i) T();
        return static_cast<T*>(p);
    }
    Probe saved;
    void* p = alloc_first(sizeof(T), n, ti, &saved);
    for (std::size_t i = 0; i < n; i++) ::new (static_cast<T*>(p) + i) T();
    learn_layout(ti, &saved);
    return static_cast<T*>(p);
}

template <class T>
struct RootNode {
    RootNode* next;
    RootNode* prev;
    T* ptr;  // atomic accesses only
};

}  // namespace detail

// ---- allocation ----
template <class T, class... Args>
T* make(Args&&... args) {
    static_assert(alignof(T) <= 16, "collected objects are at most 16-byte aligned");
    detail::TypeInfo* ti = &detail::type_info<T>;
    if (__builtin_expect(__atomic_load_n(&ti->kind, __ATOMIC_ACQUIRE) != detail::kLayoutUnknown, 1)) {
        void* p = detail::alloc_one(sizeof(T), ti);
        return ::new (p) T(std::forward<Args>(args)...);
    }
    detail::Probe saved;
    void* p = detail::alloc_first(sizeof(T), 1, ti, &saved);
    T* obj;
    try {
        obj = ::new (p) T(std::forward<Args>(args)...);
    } catch (...) {
        detail::learn_layout(nullptr, &saved);  // restore the probe; layout stays unknown
        throw;
    }
    detail::learn_layout(ti, &saved);
    return obj;
}

// n value-initialised Ts (Go's make([]T, n)); the array is one object.
template <class T>
T* make_array(std::size_t n) { return detail::make_n<T>(n); }

// T with every word scanned conservatively (for types holding raw pointers to
// collected objects). Stores of collected pointers into it while the program
// runs must use store() so the collector sees them.
template <class T, class... Args>
T* make_conservative(Args&&... args) {
    static detail::TypeInfo ti = {detail::kLayoutConservative, static_cast<std::uint32_t>((sizeof(T) + 7) / 8),
                                  nullptr};
    void* p = detail::alloc_one(sizeof(T), &ti);
    return ::new (p) T(std::forward<Args>(args)...);
}

// Untyped allocation: scan = false for pointer-free data (never scanned),
// true to scan every word conservatively.
void* alloc(std::size_t bytes, bool scan);

// A store of a collected pointer through the write barrier (Ptr<T> and Root<T>
// use it; use it directly for conservatively scanned objects). The check and
// the store form a nosuspend region: a stop-the-world that turns the barrier
// on cannot fall between them.
inline void store(void** slot, void* value) {
    ::goalloc::tls_nosuspend++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&detail::write_barrier_enabled, __ATOMIC_RELAXED) != 0, 0))
        detail::barrier_slow(slot, value);
    __atomic_store_n(slot, value, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (--::goalloc::tls_nosuspend == 0 &&
        __builtin_expect((::goalloc::tls_suspend_pending |
                          __atomic_load_n(&::goalloc::gc_stop_requested, __ATOMIC_RELAXED)) != 0, 0))
        ::goalloc::suspend_hook();
}

// ---- Ptr<T>: a pointer field of a collected object ----
template <class T>
class Ptr {
public:
    Ptr() noexcept : p_(nullptr) { detail::note_slot(this); }
    Ptr(std::nullptr_t) noexcept : p_(nullptr) { detail::note_slot(this); }
    Ptr(T* p) noexcept : p_(p) { detail::note_slot(this); }
    Ptr(const Ptr& o) noexcept : p_(o.get()) { detail::note_slot(this); }
    Ptr& operator=(T* p) noexcept {
        store(reinterpret_cast<void**>(&p_), p);
        return *this;
    }
    Ptr& operator=(const Ptr& o) noexcept { return *this = o.get(); }
    Ptr& operator=(std::nullptr_t) noexcept { return *this = static_cast<T*>(nullptr); }

    T* get() const noexcept { return __atomic_load_n(&p_, __ATOMIC_RELAXED); }
    T* operator->() const noexcept { return get(); }
    T& operator*() const noexcept { return *get(); }
    operator T*() const noexcept { return get(); }
    explicit operator bool() const noexcept { return get() != nullptr; }

private:
    T* p_;
};

// ---- Root<T>: a collected pointer held outside the collected heap ----
template <class T>
class Root {
public:
    Root() noexcept : Root(nullptr) {}
    Root(T* p) noexcept : n_{nullptr, nullptr, p} { detail::root_register(&n_); }
    Root(const Root& o) noexcept : Root(o.get()) {}
    ~Root() { detail::root_unregister(&n_); }
    Root& operator=(T* p) noexcept {
        store(reinterpret_cast<void**>(&n_.ptr), p);
        return *this;
    }
    Root& operator=(const Root& o) noexcept { return *this = o.get(); }
    T* get() const noexcept { return __atomic_load_n(&n_.ptr, __ATOMIC_RELAXED); }
    T* operator->() const noexcept { return get(); }
    T& operator*() const noexcept { return *get(); }
    operator T*() const noexcept { return get(); }
    explicit operator bool() const noexcept { return get() != nullptr; }

private:
    detail::RootNode<T> n_;
};

// Go's runtime.SetFinalizer: fn(obj) runs once, on the finalizer thread, after
// obj becomes unreachable; objects it references stay alive until then. obj
// must be the start of a collected object. nullptr fn removes the finalizer.
template <class T>
void set_finalizer(T* obj, void (*fn)(T*)) {
    if (fn == nullptr) {
        detail::set_finalizer_raw(obj, nullptr, nullptr);
        return;
    }
    detail::set_finalizer_raw(
        obj, [](void* o, void* f) { reinterpret_cast<void (*)(T*)>(f)(static_cast<T*>(o)); },
        reinterpret_cast<void*>(fn));
}
// Block until every finalizer queued so far has run (for tests and shutdown).
void run_finalizers();

}  // namespace goalloc::gc
