// mark.cpp — marking (Go's mgcmark.go, mgcwork.go, mwbbuf.go, checkmark).
//
// Colours: an object is white (mark bit clear), grey (mark bit set, on a work
// buffer), or black (mark bit set, scanned — or noscan, or allocated during
// the mark phase). greyobject sets the bit with an atomic OR and queues the
// object if it has pointers; an object is queued once a cycle, or twice when
// two markers shade it at the same instant (shade says why that is allowed).
//
// Work buffers (Go's gcWork/workbuf): a marker keeps one local buffer
// (Gcw, on its own stack) and exchanges full/empty buffers with the global
// lists under work.lock. Every marker flushes its local buffer before it
// leaves a nosuspend region (assists) or reports idle (the background
// worker), so when the world is stopped all grey objects are on the global
// list or in a thread's write-barrier buffer.
//
// Scanning: a collected object's words are scanned where its span's heap bits
// say "pointer" (precise for make<T> with Ptr<> members, every word for
// conservative objects); a candidate pointer counts if it falls inside an
// allocated object of a collected span (interior pointers included).
// Stacks, saved registers and root ranges are scanned conservatively.
// Objects above 128 KiB are scanned in 128 KiB oblets (Go's oblets), so one
// big array does not hold a marker for long.
#include <sys/mman.h>

#include <cstring>

#include "gcinternal.h"
#include "options.h"

namespace goalloc::gc {

static constexpr std::size_t kWorkBufBytes = 4096;
static constexpr std::size_t kObletBytes = 128 << 10;

// A grey object and its span: the marker that shaded it had the span in
// hand, so the one that scans it need not look it up again (the arena
// index, the span table and the record's address, ~10 instructions an
// object of ~120). The span stays valid while the entry is queued: a span
// with a marked object is not swept, and so not freed, until the mark is
// over, and every buffer is empty by then.
struct WorkEntry {
    std::uintptr_t obj;  // an object start, or a large object's piece (scan_large)
    MSpan* span;
};
struct WorkBuf {
    WorkBuf* next;
    std::uint32_t n;
    std::uint32_t pad;
    WorkEntry obj[(kWorkBufBytes - 16) / sizeof(WorkEntry)];
};
static constexpr std::uint32_t kWorkBufCap = (kWorkBufBytes - 16) / sizeof(WorkEntry);

// The global work lists, on a cache line of their own: every buffer a
// marker hands over or takes writes them, and they shared a line with
// write_barrier_enabled, which the mutator reads at every Ptr<> store.
struct alignas(64) WorkLists {
    Mutex lock{kRankGcWork};
    WorkBuf* full = nullptr;   // lock
    WorkBuf* empty = nullptr;  // lock
    std::atomic<std::int64_t> nfull{0};
};
static constinit WorkLists work;

static WorkBuf* getempty() {
    {
        LockGuard g(work.lock);
        if (WorkBuf* b = work.empty) {
            work.empty = b->next;
            b->next = nullptr;
            b->n = 0;
            return b;
        }
    }
    constexpr std::size_t kChunk = 64 * kWorkBufBytes;
    auto* c = static_cast<char*>(sys::alloc(kChunk));
    if (c == nullptr) throw_fatal("gc: out of memory for mark work buffers");
    LockGuard g(work.lock);
    for (std::size_t i = 1; i < kChunk / kWorkBufBytes; i++) {
        auto* b = reinterpret_cast<WorkBuf*>(c + i * kWorkBufBytes);
        b->next = work.empty;
        work.empty = b;
    }
    auto* b = reinterpret_cast<WorkBuf*>(c);
    b->n = 0;
    b->next = nullptr;
    return b;
}

static void putfull(WorkBuf* b) {
    LockGuard g(work.lock);
    b->next = work.full;
    work.full = b;
    work.nfull.fetch_add(1, std::memory_order_relaxed);
}

static void putempty(WorkBuf* b) {
    LockGuard g(work.lock);
    b->next = work.empty;
    work.empty = b;
}

static WorkBuf* trygetfull() {
    if (work.nfull.load(std::memory_order_relaxed) == 0) return nullptr;
    LockGuard g(work.lock);
    WorkBuf* b = work.full;
    if (b != nullptr) {
        work.full = b->next;
        b->next = nullptr;
        work.nfull.fetch_sub(1, std::memory_order_relaxed);
    }
    return b;
}

bool work_available() { return work.nfull.load(std::memory_order_acquire) != 0; }

// At start-up, outside any stop: map and touch the first work buffers, so the
// first stop-the-world does not pay for page faults (it measured 1.5 ms).
void mark_warm() {
    WorkBuf* bufs[128];
    for (auto& b : bufs) {
        b = getempty();
        std::memset(b->obj, 0, sizeof b->obj);
    }
    for (auto* b : bufs) putempty(b);
}

// A marker's local state. The local buffer's entries are b->obj[0, top -
// b->obj): a put or get moves the cursor `top` and compares it with a bound
// (lim, bot), one compare each, and b->n is written back (sync) only when the
// buffer is handed over. With no buffer, top == bot == lim == nullptr, so
// both compares send the first put or get to the slow path.
struct Gcw {
    WorkBuf* b = nullptr;
    WorkEntry* top = nullptr;
    WorkEntry* bot = nullptr;  // b->obj
    WorkEntry* lim = nullptr;  // b->obj + kWorkBufCap
    std::int64_t bytes_marked = 0;
    std::int64_t scan_work = 0;
    bool check = false;  // checkmark pass: use checkmarkBits, verify gcmarkBits
    // Checkmark diagnostics: where the pointer being shaded was found.
    const char* src = "";
    std::uintptr_t src_addr = 0;
    // A stack scanned from checkmark's copy: src_addr + src_shift is the
    // word's address on the stack, [src_lo, src_hi) the thread's stack.
    std::uintptr_t src_shift = 0, src_lo = 0, src_hi = 0;

    // The interface shade_field and scan_dense_fields share with drain's
    // LocalCursor: the Gcw itself, and around a call that uses it, nothing
    // to write back or reload.
    Gcw& gcw() { return *this; }
    void out() {}
    void in() {}
    std::uint32_t count() const { return static_cast<std::uint32_t>(top - bot); }
    void sync() { b->n = count(); }
    void set(WorkBuf* nb) {
        b = nb;
        bot = nb != nullptr ? nb->obj : nullptr;
        top = nb != nullptr ? nb->obj + nb->n : nullptr;
        lim = nb != nullptr ? nb->obj + kWorkBufCap : nullptr;
    }
    void put(std::uintptr_t obj, MSpan* s) {
        if (GA_UNLIKELY(top == lim)) put_slow();
        *top++ = {obj, s};
    }
    GA_NOINLINE void put_slow() {
        if (b != nullptr) {
            sync();
            putfull(b);
        }
        set(getempty());
    }
    // An entry, or {0, nullptr} if there is no work.
    WorkEntry tryget() {
        if (GA_LIKELY(top != bot)) return *--top;
        return tryget_slow();
    }
    GA_NOINLINE WorkEntry tryget_slow() {
        WorkBuf* f = trygetfull();
        if (f == nullptr) return {0, nullptr};
        if (b != nullptr) putempty(b);
        set(f);
        return *--top;
    }
    // Go's gcWork.balance: when no full buffer is left for others (assists
    // looking for work, or the worker), hand half of this one over, so that
    // a marker working through a deep structure does not keep all of its
    // grey objects to itself while the others idle.
    void balance() {
        if (count() < 8) return;
        sync();
        WorkBuf* h = getempty();
        std::uint32_t k = b->n / 2;
        std::memcpy(h->obj, b->obj, k * sizeof b->obj[0]);
        std::memmove(b->obj, b->obj + k, (b->n - k) * sizeof b->obj[0]);
        h->n = k;
        b->n -= k;
        set(b);
        putfull(h);
    }
    void flush() {
        if (b != nullptr) {
            sync();
            if (b->n != 0) putfull(b);
            else putempty(b);
            set(nullptr);
        }
        if (bytes_marked) gcs.bytes_marked.fetch_add(bytes_marked, std::memory_order_relaxed);
        if (scan_work) gcs.scan_work.fetch_add(scan_work, std::memory_order_relaxed);
        bytes_marked = scan_work = 0;
    }
};

// drain's direct loop keeps the local buffer's cursor and its count of
// bytes marked in registers: a Gcw's address goes to out-of-line calls, so
// the compiler keeps its fields in memory, and every put and pop then waited
// on the store of the one before (a chain through memory at every object).
// This copy's address is taken by no call; around a call that needs the Gcw
// (a slow path, a child in another span) it is written back (out) and
// reloaded (in).
struct LocalCursor {
    Gcw& w;
    WorkEntry* top;
    WorkEntry* bot;
    WorkEntry* lim;
    std::int64_t bytes_marked = 0;
    explicit LocalCursor(Gcw& g) : w(g), top(g.top), bot(g.bot), lim(g.lim) {}
    Gcw& gcw() { return w; }
    void out() {
        w.top = top;
        w.bytes_marked += bytes_marked;
        bytes_marked = 0;
    }
    void in() {
        top = w.top;
        bot = w.bot;
        lim = w.lim;
    }
    GA_INLINE void put(std::uintptr_t obj, MSpan* s) {
        if (GA_UNLIKELY(top == lim)) {
            out();
            w.put_slow();
            in();
        }
        *top++ = {obj, s};
    }
    GA_INLINE WorkEntry tryget() {
        if (GA_LIKELY(top != bot)) return *--top;
        out();
        WorkEntry e = w.tryget_slow();
        in();
        return e;
    }
};

[[noreturn]] static void checkmark_fail(std::uintptr_t obj, MSpan* s, const Gcw& w) {
    Msg m;
    m.s("goalloc: fatal error: checkmark found unmarked reachable object ").hex(obj).s(" (span ")
        .hex(s->base).s(", ").dec(s->elemsize).s("-byte objects, ").s(s->heapBits ? "scan" : "noscan")
        .s("), referenced from ").s(w.src).s(" at ").hex(w.src_addr + w.src_shift);
    if (w.src_hi != 0) m.s(" (the thread's stack ").hex(w.src_lo).s("-").hex(w.src_hi).s(")");
    m.s("\n");
    m.fatal();
}

static bool checking = false;  // world stopped during checkmark

// Set object idx's mark bit; false if it was marked already (or allocated
// black in this mark).
static GA_INLINE bool set_mark(MSpan* s, std::uint32_t idx) {
    std::uint64_t bit = std::uint64_t{1} << (idx & 63);
    std::atomic<std::uint64_t>& mw = __atomic_load_n(&s->gcmarkBits, __ATOMIC_RELAXED)[idx >> 6];
    std::uint64_t cur = mw.load(std::memory_order_relaxed);
    if (cur & bit) return false;
    // Allocated black, mark bit still to come (heap.cpp, blacken_new). Only a
    // span with a black-allocation snapshot has such slots; a stale read of
    // the flag (snapshot just taken) only makes this marker mark and scan a
    // new object, whose fields hold nothing the snapshot does not cover.
    if ((__atomic_load_n(&s->gcflags, __ATOMIC_RELAXED) & kSpanBlackCache) &&
        (s->remoteBits[idx >> 6].load(std::memory_order_relaxed) & bit))
        return false;
    // A locked OR whose result is not used, not a test-and-set: fetch_or
    // with its old bit tested compiles to `lock bts` with a register bit
    // offset, the bit-string form, which is microcoded and cost ~12% of
    // binary_trees' time (bench/results/ab.md). Two markers that both read
    // the bit clear (cur) both queue the object: it is scanned twice
    // (shading is idempotent) and counted twice in bytes_marked (the
    // pacer's figure, off by an object on a race of a few instructions).
    mw.fetch_or(bit, std::memory_order_relaxed);
    return true;
}

// Shade p: mark the object it points into and queue it for scanning if it
// has pointers. kPrecise: p comes from a Ptr<> field (find_object_at). On a
// large heap every step here is a likely cache miss, so it touches as few
// lines of the span record as it can: the first (bounds, size, span class,
// gcflags) and, for conservative words, the second (sweepgen).
// kMaybeCheck false: the caller knows this is not the checkmark pass.
template <bool kPrecise = false, bool kMaybeCheck = true>
static GA_INLINE bool shade(Gcw& w, std::uintptr_t p) {
    MSpan* s;
    std::uint32_t idx;
    std::uintptr_t obj = find_object_at<kPrecise>(p, &s, &idx);
    if (obj == 0) return false;
    std::uint64_t bit = std::uint64_t{1} << (idx & 63);
    if (kMaybeCheck && GA_UNLIKELY(w.check)) {
        if (s->checkmarkBits == nullptr) {
            s->checkmarkBits = static_cast<std::uint64_t*>(ga_calloc(kMaxBitmapWords, 8));
            if (s->checkmarkBits == nullptr) throw_fatal("gc: out of memory (checkmark)");
        }
        if (s->checkmarkBits[idx >> 6] & bit) return false;
        s->checkmarkBits[idx >> 6] |= bit;
        if (!(s->gcmarkBits[idx >> 6].load(std::memory_order_relaxed) & bit)) checkmark_fail(obj, s, w);
        if (s->heapBits != nullptr) w.put(obj, s);
        return true;
    }
    if (!set_mark(s, idx)) return false;
    w.bytes_marked += static_cast<std::int64_t>(s->elemsize);
    if (!(s->spanclass & 1)) w.put(obj, s);  // a scan span (noscan: class | 1, no heap bits)
    return true;
}

// A Ptr<> field's value v (not null) in an object of span `from`, which is
// being scanned: shade<true, false>, with the common case apart — v in the
// same span (a tree's nodes sit beside their children). That span is a
// collected scan span in use (it holds the object being scanned), and v
// below its limit is below its nelems-th object, so none of the record's
// checks, nor its span class, need reading (binary_trees 19: ~1.5% faster
// than checking, when the hint went through find_object_at).
// K: a Gcw, or drain's LocalCursor. grey_field does the work and says
// whether it greyed an object in `from` (*obj), for the caller to queue
// (shade_field) or, in drain's direct loop, to scan next: a node's last
// child, which the buffer would give back at once (the same order, without
// the push and the pop).
template <class K>
static GA_INLINE bool grey_field(K& w, std::uintptr_t v, MSpan* from, std::uintptr_t* obj) {
    if (GA_UNLIKELY(v - from->base >= from->limit - from->base)) {
        w.out();
        shade<true, false>(w.gcw(), v);
        w.in();
        return false;
    }
    std::uint32_t idx = from->index_of(v);
    if (GOALLOC_DEBUG_LEVEL >= 1 && !from->is_allocated(idx)) return false;
    if (!set_mark(from, idx)) return false;
    w.bytes_marked += static_cast<std::int64_t>(from->elemsize);
    *obj = from->object_base(idx);
    return true;
}

template <class K>
static GA_INLINE void shade_field(K& w, std::uintptr_t v, MSpan* from) {
    std::uintptr_t obj;
    if (grey_field(w, v, from, &obj)) w.put(obj, from);
}

static inline bool maybe_heap(std::uintptr_t v) { return in_arena_range(v); }

static inline void scan_word(Gcw& w, std::uintptr_t* slot) {
    std::uintptr_t v = load_program_word(slot);
    if (GA_UNLIKELY(w.check)) {
        w.src = "a heap object's pointer word";
        w.src_addr = reinterpret_cast<std::uintptr_t>(slot);
    }
    if (maybe_heap(v)) shade(w, v);
}

// f(b) for every set bit b in [b0, b1) of a span's heap bits (b: the word's
// index in the span).
template <class F>
static GA_INLINE void for_each_heap_bit(std::atomic<std::uint64_t>* hb, std::size_t b0, std::size_t b1, F f) {
    for (std::size_t b = b0; b < b1;) {
        std::uint64_t bits = hb[b >> 6].load(std::memory_order_relaxed) >> (b & 63);
        std::size_t avail = 64 - (b & 63);
        if (b1 - b < avail) {
            bits &= (std::uint64_t{1} << (b1 - b)) - 1;
            avail = b1 - b;
        }
        for (; bits != 0; bits &= bits - 1) f(b + static_cast<unsigned>(__builtin_ctzll(bits)));
        b += avail;
    }
}

// A large object's words (a pointer array: a table of roots, a slice's
// backing store) each lead to an unrelated object, and shading one costs a
// chain of dependent cache misses: the span table entry, then the span
// record, then its allocBits and gcmarkBits words — ~4 misses in a row a
// pointer on a heap larger than the caches. So they are shaded in batches,
// in steps: prefetch every candidate's span table entry; then load the spans
// and prefetch their records' first two lines; then prefetch the bitmap
// words; then shade. Each step's misses overlap across the batch instead of
// following one another. (Small objects keep the direct path: their few
// words would not fill a batch, and a tree's nodes mostly sit in the span at
// hand — shade_field.)
static constexpr unsigned kShadeBatch = 64;

// The prefetch steps read span records without the checks find_object_at
// makes (a record may be under construction for another span): only
// addresses to prefetch come of it, so TSan is told to leave them be.
template <bool kPrecise>
GA_NO_TSAN static void prefetch_shade_batch(const std::uintptr_t* v, unsigned n) {
    MSpan* sp[kShadeBatch];
    for (unsigned i = 0; i < n; i++) {
        HeapArena* a = arena_of(v[i]);
        if (a != nullptr) __builtin_prefetch(&a->spans[(v[i] >> kPageShift) & (kPagesPerArena - 1)]);
    }
    for (unsigned i = 0; i < n; i++) {
        MSpan* s = span_of(v[i]);
        sp[i] = s;
        if (s != nullptr) {
            __builtin_prefetch(s);
            // The second line: sweepgen and allocBits for the conservative
            // lookup. (A precise pointer needs only the first.)
            if (!kPrecise) __builtin_prefetch(reinterpret_cast<const char*>(s) + 64);
        }
    }
    for (unsigned i = 0; i < n; i++) {
        MSpan* s = sp[i];
        // Only a plausible record (a collected span in use holding v): the
        // record may be under construction for another span (find_object_at
        // checks it properly below); prefetches never fault.
        if (s == nullptr || v[i] - s->base >= s->limit - s->base) continue;
        std::uint32_t wi = s->index_of(v[i]) >> 6;
        if (!kPrecise || GOALLOC_DEBUG_LEVEL >= 1) __builtin_prefetch(__atomic_load_n(&s->allocBits, __ATOMIC_RELAXED) + wi);
        // (A malloc span has no gcmarkBits.)
        if (std::atomic<std::uint64_t>* mb = __atomic_load_n(&s->gcmarkBits, __ATOMIC_RELAXED)) __builtin_prefetch(mb + wi);
    }
}

template <bool kPrecise>
static void shade_batch(Gcw& w, const std::uintptr_t* v, unsigned n) {
    prefetch_shade_batch<kPrecise>(v, n);
    for (unsigned i = 0; i < n; i++) shade<kPrecise>(w, v[i]);
}

// Heap-bit words [b0, b1) of a large object's span (base): candidates that
// fall in the arena range go through shade_batch.
template <bool kPrecise>
static void scan_range_batched(Gcw& w, std::atomic<std::uint64_t>* hb, std::uintptr_t base, std::size_t b0,
                               std::size_t b1) {
    std::uintptr_t v[kShadeBatch];
    unsigned n = 0;
    for_each_heap_bit(hb, b0, b1, [&](std::size_t b) {
        std::uintptr_t x = load_program_word(reinterpret_cast<std::uintptr_t*>(base + (b << 3)));
        if (!maybe_heap(x)) return;
        v[n++] = x;
        if (n == kShadeBatch) {
            shade_batch<kPrecise>(w, v, n);
            n = 0;
        }
    });
    if (n != 0) shade_batch<kPrecise>(w, v, n);
}

// A small object of a uniform span: its type's mask (heap.cpp). The words of
// a precise type are Ptr<> fields: shade<true>. (Inline: most objects a
// marker scans take this path, and it is a few instructions a pointer.)
// kMaybeCheck false: the caller knows this is not the checkmark pass. The
// scan work is the caller's to count (to - from).
template <bool kMaybeCheck = true>
static GA_INLINE void scan_uniform_fields(Gcw& w, MSpan* s, const TypeInfo* u, std::uintptr_t from) {
    std::uint64_t bits = u->mask[0];
    if (GA_LIKELY(u->kind == detail::kLayoutPrecise && !(kMaybeCheck && w.check))) {
        // A Ptr<> field holds null or a collected object's address: a null
        // test, not the arena range (two loads and a compare); anything else
        // a program stored there fails find_object_at's checks as before.
        const std::uintptr_t* f = reinterpret_cast<const std::uintptr_t*>(from);
        for (; bits != 0; bits &= bits - 1) {
            std::uintptr_t v = load_program_word(f + __builtin_ctzll(bits));
            if (v != 0) shade_field(w, v, s);
        }
    } else {
        for (; bits != 0; bits &= bits - 1) scan_word(w, reinterpret_cast<std::uintptr_t*>(from) + __builtin_ctzll(bits));
    }
}

// An object of a uniform span whose type puts its n Ptr<> fields first and
// nothing pointer-like after them (MSpan::scan_dense: a tree node, a pair, a
// list cell, gc_latency's 64-byte object): n words, one after the other, with
// no mask to walk.
// (drain's direct loop has its own for two fields.)
template <class K>
static GA_INLINE void scan_dense_fields(K& w, MSpan* s, std::uintptr_t from, unsigned n) {
    const std::uintptr_t* f = reinterpret_cast<const std::uintptr_t*>(from);
    do {
        std::uintptr_t v = load_program_word(f++);
        if (v != 0) shade_field(w, v, s);
    } while (--n != 0);
}

// Words [from, to) of span s that hold pointers. The scan work (to - from)
// is the caller's to count.
static void scan_range_bits(Gcw& w, MSpan* s, std::uintptr_t from, std::uintptr_t to) {
    if (const TypeInfo* u = uniform_type(s)) {
        scan_uniform_fields(w, s, u, from);
        return;
    }
    // Words [from, to) of span s, where its heap bits are set.
    std::size_t b0 = (from - s->base) >> 3, b1 = (to - s->base) >> 3;
    std::atomic<std::uint64_t>* hb = s->heapBits;
    if (s->sizeclass == 0 && !w.check) {
        if (__atomic_load_n(&s->gcflags, __ATOMIC_ACQUIRE) & kSpanPreciseLarge)
            scan_range_batched<true>(w, hb, s->base, b0, b1);
        else
            scan_range_batched<false>(w, hb, s->base, b0, b1);
        return;
    }
    for_each_heap_bit(hb, b0, b1,
                      [&](std::size_t b) { scan_word(w, reinterpret_cast<std::uintptr_t*>(s->base + (b << 3))); });
}

// A large object's range is scanned kScanPiece bytes at a time, one piece per
// queue entry: the marker queues the rest of the oblet, then scans the piece.
// Two reasons. A stop or handshake waits for at most one piece (the drain
// loop polls between entries): an oblet of pointers costs up to ~2 ms of
// cache misses, which a stop of the world would otherwise wait out (an
// assist scans inside a nosuspend region). And the objects a piece shades go
// on the work buffer above the rest of the oblet, so they are scanned next,
// while the span records and mark-bit words their shading fetched are still
// in the cache: scanned whole, an oblet (16K pointers) shaded tens of
// thousands of objects before the first of them was scanned, and scanning
// each missed on its span's bitmap again (gc_mark lists: 11-23% less time an
// object; gc_latency: a third to a half fewer assists; bench/results/ab.md).
static constexpr std::size_t kScanPiece = 4096;

// A large object's queued entry: its start, an oblet, or where the scan of
// an oblet goes on.
// Returns the scan work done (the piece scanned).
static GA_NOINLINE std::int64_t scan_large(Gcw& w, std::uintptr_t b, MSpan* s) {
    std::uintptr_t end = s->base + s->elemsize;
    if (s->elemsize > kObletBytes) {
        if (b == s->base)
            for (std::uintptr_t o = b + kObletBytes; o < end; o += kObletBytes) w.put(o, s);
        std::uintptr_t oblet_end = s->base + ((b - s->base) / kObletBytes + 1) * kObletBytes;
        if (oblet_end < end) end = oblet_end;
    }
    std::uintptr_t q = end - b > kScanPiece ? b + kScanPiece : end;
    if (w.check) q = end;  // checkmark: the world is stopped
    if (q < end) w.put(q, s);
    scan_range_bits(w, s, b, q);
    return static_cast<std::int64_t>(q - b);
}

// For an object of small span s: its uniform type (*u; nullptr: a mixed
// span, scanned through its heap bits) and, if that type's Ptr<> fields come
// first and alone (MSpan::scan_dense), how many; else 0.
static GA_INLINE unsigned dense_fields(const MSpan* s, const TypeInfo** u) {
    *u = uniform_type(s);
    // scan_dense is read after uniform (acquire), which the allocating
    // thread published after it (heap.cpp, type_switch).
    return *u != nullptr ? s->scan_dense.load(std::memory_order_relaxed) : 0;
}

// Scan one queued entry of span s: an object start, or a large object's
// entry (scan_large). Returns the scan work done, for the caller to count
// (drain keeps it in a register, not in w.scan_work).
template <bool kCheck>
static GA_INLINE std::int64_t scanobject(Gcw& w, std::uintptr_t b, MSpan* s) {
    if (s->sizeclass != 0) {
        std::int64_t es = static_cast<std::int64_t>(s->elemsize);
        const TypeInfo* u;
        const unsigned n = dense_fields(s, &u);
        if (!kCheck && GA_LIKELY(n != 0)) scan_dense_fields(w, s, b, n);
        else if (u != nullptr) scan_uniform_fields<kCheck>(w, s, u, b);
        else scan_range_bits(w, s, b, b + es);
        return es;
    }
    return scan_large(w, b, s);
}

bool greyobject(std::uintptr_t p) {
    Gcw w;
    bool r = shade(w, p);
    w.flush();
    return r;
}

// A batch of greyobject calls on one thread (root lists): one work buffer
// for the lot, handed over by grey_flush.
static thread_local Gcw grey_batch;
void grey_batched(std::uintptr_t p) { shade(grey_batch, p); }
void grey_flush() { grey_batch.flush(); }

// rec (the checkmark's record of a stack, else nullptr): gets, word for
// word, each word that resolved to an allocated object, 0 elsewhere
// (stack_record).
void scan_conservative_w(Gcw& w, std::uintptr_t lo, std::uintptr_t hi, std::uintptr_t* rec = nullptr) {
    lo = (lo + 7) & ~std::uintptr_t{7};
    for (std::uintptr_t a = lo; a + 8 <= hi; a += 8) {
        std::uintptr_t v = load_program_word(reinterpret_cast<std::uintptr_t*>(a));
        if (GA_UNLIKELY(w.check)) w.src_addr = a;
        if (GA_UNLIKELY(rec != nullptr)) {
            MSpan* s;
            std::uint32_t idx;
            *rec++ = maybe_heap(v) && find_object_at<false>(v, &s, &idx) != 0 ? v : 0;
        }
        if (maybe_heap(v)) shade(w, v);
    }
    w.scan_work += static_cast<std::int64_t>(hi - lo);
}

void scan_conservative(std::uintptr_t lo, std::uintptr_t hi) {
    Gcw w;
    scan_conservative_w(w, lo, hi);
    w.flush();
}

void scan_object_contents(std::uintptr_t obj) {
    MSpan* s;
    std::uint32_t idx;
    std::uintptr_t o = find_object(obj, &s, &idx);
    if (o == 0 || s->heapBits == nullptr) return;
    Gcw w;
    w.check = checking;
    w.src = "the contents of an object with a finalizer";
    std::uintptr_t end = s->sizeclass == 0 ? s->base + s->elemsize : o + s->elemsize;
    scan_range_bits(w, s, o, end);
    w.scan_work += static_cast<std::int64_t>(end - o);
    w.flush();
}


// Checkmark mode: the record of what the first stop's stack scan resolved
// (stack_record; checkmark_run). From the OS, not ga_malloc: a
// thread may make it in the suspend signal's handler, which may have
// interrupted ga_malloc.
void free_stack_copy(GcThread* t) {
    if (t->ck_copy != nullptr) sys::free_metadata(t->ck_copy, (t->ck_words * 8 + 4095) & ~std::size_t{4095});
    t->ck_copy = nullptr;
    t->ck_words = 0;
}

// Checkmark mode: a record for the first stop's scan of t's stack from sp
// (8-aligned) and of its saved registers to fill as it reads them:
// ck_copy = [stack words | 24 registers]; nullptr if there is no memory
// (the checkmark then traces less from this thread). The checkmark traces
// from the words this scan resolved, as this scan read them: a copy taken
// apart from the scan would let two things differ — a word the scan's own
// frames change in between, and a stale word at a free slot that another
// thread allocated white meanwhile (before its own mark-start handshake)
// and dropped, which the checkmark would resolve at termination and take
// for an unmarked root (bench/results/NOTES.md, seventeenth and eighteenth
// passes; test GcDiag.CheckmarkRecordsOnlyResolvedStackWords).
static std::uintptr_t* stack_record(GcThread* t, std::uintptr_t sp) {
    free_stack_copy(t);
    const std::size_t n = (t->stack_hi - sp) / 8;
    auto* c = static_cast<std::uintptr_t*>(sys::alloc(((n + 24) * 8 + 4095) & ~std::size_t{4095}));
    if (c == nullptr) return nullptr;
    t->ck_copy = c;
    t->ck_words = n + 24;
    t->ck_sp = sp;
    return c;
}

static void scan_thread_stack(GcThread* t, void* arg) {
    Gcw& w = *static_cast<Gcw*>(arg);
    if (w.check) {
        // Checkmark traces from the stacks as they were at the first stop:
        // a conservative scan of the stacks now would also see pointers
        // computed since (one past the end of an object, a dead register),
        // which may point at garbage that was rightly left unmarked.
        if (t->ck_copy != nullptr) {
            // The record is [stack words | 24 saved registers]; a failure
            // names the word's place on the stack, not in the record.
            auto c = reinterpret_cast<std::uintptr_t>(t->ck_copy);
            std::size_t n = t->ck_words - 24;
            w.src = "a thread stack (as of the cycle's first stop)";
            w.src_shift = t->ck_sp - c;
            w.src_lo = t->stack_lo;
            w.src_hi = t->stack_hi;
            scan_conservative_w(w, c, c + n * 8);
            w.src = "a thread's saved registers (as of the cycle's first stop; 'at' is the slot's byte "
                    "offset, 0xb8 the tiny block)";
            w.src_shift = 0 - (c + n * 8);
            scan_conservative_w(w, c + n * 8, c + t->ck_words * 8);
            w.src_shift = 0;
            w.src_lo = w.src_hi = 0;
        }
        return;
    }
    std::uintptr_t sp = t->saved_sp.load(std::memory_order_relaxed);
    if (sp == 0 || sp < t->stack_lo || sp > t->stack_hi) {
        // Not parked (the caller's own thread): scan from here.
        volatile std::uintptr_t here = 0;
        __builtin_unwind_init();
        sp = reinterpret_cast<std::uintptr_t>(&here);
        if (sp < t->stack_lo || sp > t->stack_hi) return;
    }
    sp = (sp + 7) & ~std::uintptr_t{7};
    std::uintptr_t* rec = checkmark_enabled() ? stack_record(t, sp) : nullptr;
    w.src = "a thread stack";
    scan_conservative_w(w, sp, t->stack_hi, rec);
    w.src = "a thread's saved registers";
    scan_conservative_w(w, reinterpret_cast<std::uintptr_t>(&t->regs[0]),
                        reinterpret_cast<std::uintptr_t>(&t->regs[24]), rec ? rec + t->ck_words - 24 : nullptr);
    // The current tiny block: later tiny allocations into it are not black.
    if (t->tiny != 0) shade(w, t->tiny);
    // (Checkmark: the record's last register slot, unused by the kernel, keeps the tiny block.)
    if (t->ck_copy != nullptr && t->ck_words >= 24 && t->tiny != 0) t->ck_copy[t->ck_words - 1] = t->tiny;
}

std::uint64_t scan_one_stack(GcThread* t) {
    Gcw w;
    w.check = checking;
    scan_thread_stack(t, &w);
    w.flush();
    std::uintptr_t sp = t->saved_sp.load(std::memory_order_relaxed);
    return sp >= t->stack_lo && sp <= t->stack_hi ? t->stack_hi - sp : 0;
}

void scan_stacks() {
    Gcw w;
    w.check = checking;
    for_each_thread(scan_thread_stack, &w);
    w.flush();
}

// Drain grey objects until `budget` bytes of scan work are done (< 0: all).
//
// Scanning an object mostly waits for its first cache line. Objects taken
// from the work buffer go through a small FIFO (Boehm GC does the same): each
// is prefetched when it enters and scanned kPrefetch objects later, so up to
// kPrefetch misses are in flight at once.
static constexpr unsigned kPrefetch = 8;

// ... but only where that pays. On a heap whose objects point to their
// neighbours in address order (a tree built bottom-up: a node sits just after
// its children), popping the work buffer last-in first-out walks memory
// nearly in order, and the hardware's stream prefetcher has each line in
// cache before it is read; the FIFO interleaves eight such walks, which the
// hardware no longer follows, and its own prefetches come too late to cover
// a miss. On a heap whose objects point anywhere (gc_latency's lists after
// its replacements) it is the other way round. Measured (gc_mark, 16-32 MiB
// live): a tree marks ~1.8x faster without the FIFO, lists ~2.3x slower.
// Which heap this is, nothing cheap tells beforehand, so each marking thread
// measures: it times windows of kTuneWindow progress, keeps an estimate of
// the time per unit of progress with the FIFO and without ("direct"), runs
// the faster, and now and then one window of the other, to notice when the
// heap's shape changes. Windows span drains (an assist drains a little at a
// time); only time spent inside drains counts.
static constexpr std::int64_t kTuneWindow = 128 << 10;
// Owner thread only (initial-exec TLS, zero-initialized: FIFO, explore at once).
static __thread PrefetchTuner tls_tuner __attribute__((tls_model("initial-exec")));

// A window of the tuner's is over: ns for ticks of progress. Returns the
// mode for the next window (true: direct).
bool prefetch_tuner_next(PrefetchTuner& t, std::uint64_t ns, std::int64_t ticks) {
    const float sample = static_cast<float>(ns) / static_cast<float>(ticks);
    // A quarter of the new sample, at most twice the estimate: a window the
    // thread spent partly descheduled reads high (many times over), and must
    // not by itself make the other mode look better; a real change (the
    // heap's shape) moves the estimate within a few windows.
    float& e = t.est[t.direct];
    e = e == 0 ? sample : e + ((sample < 2 * e ? sample : 2 * e) - e) / 4;
    // Direct must beat the FIFO by a fifth: where the two are close (a
    // window's time also depends on which objects it met), the FIFO, which
    // bounds the cost of misses, is the safer.
    const bool best = t.est[1] != 0 && t.est[1] < 0.8f * t.est[0];
    if (t.exploring) {
        // An exploration: if it changed nothing, explore less often.
        t.exploring = 0;
        std::uint16_t g = t.gap * 2 < kTuneGapMin ? kTuneGapMin : t.gap * 2 > kTuneGapMax ? kTuneGapMax : t.gap * 2;
        t.gap = best == (t.direct == 0) ? g : kTuneGapMin;
        t.until = t.gap;
        return best;
    }
    if (t.until == 0 || t.est[!best] == 0) {
        t.exploring = 1;
        return !best;
    }
    t.until--;
    if (best != (t.direct != 0)) {
        // The mode in use got slower than the other's last estimate, which
        // may be old, or one slow window (the thread descheduled) may have
        // done it: measure the mode left behind again soon.
        t.gap = kTuneGapMin;
        if (t.until > t.gap) t.until = t.gap;
    }
    return best;
}

// How much progress between two polls of the things a drain must notice
// but need not check at every object: a stop waiting for this thread, an
// assist waiting for work (balance), credit to hand over. Progress is scan
// work + 16 bytes an object (so that small objects, with little scan work
// each, count for their cost too): ~30 small objects, or one piece of a
// large object, and a stop waits for about a microsecond more than it would
// with a poll per object. (The budget is scan work, checked at every
// object.)
static constexpr std::int64_t kDrainPoll = 1024;

// A background drain (bg_credit) hands its work to gcs.bg_credit, for
// assists to draw on, every kCreditSlack of it, not only at its end (Go's
// gcCreditSlack): at a mark's start the worker's first chunk took a few
// hundred microseconds, through which allocating threads found no credit
// and assisted.
static constexpr std::int64_t kCreditSlack = 16 << 10;

// kCheck: the checkmark pass (world stopped; checking).
template <bool kCheck>
static std::int64_t drain_impl(std::int64_t budget, bool bg_credit) {
    Gcw w;
    w.check = kCheck;
    std::int64_t done = 0, credited = 0, ticks = 0;  // done: scan work; ticks: progress (kDrainPoll)
    // One compare an object: `next` is where ticks reach the next poll or
    // could reach the budget (ticks grow at least as fast as done).
    std::int64_t next = 0;
    // The FIFO holds work entries (object and span) as the buffer gave them.
    WorkEntry ring[kPrefetch];
    unsigned head = 0, n = 0;
    PrefetchTuner& tune = tls_tuner;
    // GOALLOC_GC_MARK_PREFETCH: 0 auto, 1 FIFO, 2 direct. (The checkmark
    // pass keeps the FIFO, and its own timing out of the estimates.)
    const int pin = kCheck ? 1 : options().gcmarkprefetch;
    bool direct = pin == 2 || (pin == 0 && tune.direct);
    std::int64_t win0 = -tune.win_ticks;  // ticks at which the current window began
    if (pin == 0) tune.seg_t0 = nanotime();
    for (;;) {
        if (ticks >= next) {
            if (pin == 0 && ticks - win0 >= kTuneWindow) {
                const std::uint64_t now = nanotime();
                direct = prefetch_tuner_next(tune, tune.win_ns + (now - tune.seg_t0), ticks - win0);
                tune.direct = direct;
                tune.win_ns = 0;
                tune.seg_t0 = now;
                win0 = ticks;
            }
            if (budget >= 0 && done >= budget) break;
            // A stop-the-world is waiting for this thread (an assist, in a
            // nosuspend region): hand the work back and let it stop.
            if (GA_UNLIKELY(stop_pending())) break;
            if (GA_UNLIKELY(work.nfull.load(std::memory_order_relaxed) == 0) && w.count() >= 8 &&
                gcs.nassist.load(std::memory_order_relaxed) != 0)
                w.balance();
            next = ticks + (budget >= 0 && budget - done < kDrainPoll ? budget - done : kDrainPoll);
            if (bg_credit && done - credited >= kCreditSlack) {
                // seq_cst with the parked assist's registration and check
                // (assist_alloc): either it sees this credit or this thread
                // sees it waiting.
                gcs.bg_credit.fetch_add(done - credited, std::memory_order_seq_cst);
                if (GA_UNLIKELY(gcs.assist_parked.load(std::memory_order_seq_cst) != 0)) wake_parked_assists();
                credited = done;
            }
        }
        // Work done, and the credit it earns, is scan work only (Go's
        // heapScanWork): the unit the pacer's assist ratio is in. (It was
        // scan work + 16 bytes an object: twice the scan work of a 16-byte
        // object, so assists and background credit paid twice over for
        // small objects and the pacer's bound on allocation while marking
        // was half as tight as computed.) Each mode has a loop of its own
        // until the next poll, so neither tests the mode at every object.
        if (direct) {
            // Without the FIFO: what is left in it first, then in the order
            // the buffer gives, its cursor in registers; objects of dense
            // spans (a tree's nodes) scanned inline.
            if (n != 0) {
                const WorkEntry x = ring[head];
                head = (head + 1) % kPrefetch;
                n--;
                const std::int64_t sw = scanobject<kCheck>(w, x.obj, x.span);
                done += sw;
                ticks += sw + 16;
                continue;
            }
            // A two-field object's second child (a tree node's), if greyed
            // in the object's span, is not queued but scanned next (`pending`):
            // the buffer's last-in first-out order would give it back at
            // once, so the order is the same, without a store and a load
            // through the buffer in the walk's chain of dependent loads
            // (gc_mark's tree: 6.2 -> 4.8 ns an object, binary_trees -11%
            // time, its assists -30%: bench/results/ab.md, "pending child").
            LocalCursor c(w);
            WorkEntry pending{0, nullptr};
            while (ticks < next) {
                WorkEntry x = pending;
                if (x.obj == 0) {
                    x = c.tryget();
                    if (x.obj == 0) {
                        c.out();
                        goto out;
                    }
                }
                pending = {0, nullptr};
                MSpan* s = x.span;
                std::int64_t sw;
                const TypeInfo* u;
                if (unsigned nf = s->sizeclass != 0 ? dense_fields(s, &u) : 0) {
                    if (nf == 2) {
                        const std::uintptr_t* f = reinterpret_cast<const std::uintptr_t*>(x.obj);
                        const std::uintptr_t v0 = load_program_word(f), v1 = load_program_word(f + 1);
                        if (v0 != 0) shade_field(c, v0, s);
                        std::uintptr_t o;
                        if (v1 != 0 && grey_field(c, v1, s, &o)) pending = {o, s};
                    } else {
                        scan_dense_fields<LocalCursor>(c, s, x.obj, nf);
                    }
                    sw = static_cast<std::int64_t>(s->elemsize);
                } else {
                    c.out();
                    sw = scanobject<kCheck>(w, x.obj, s);
                    c.in();
                }
                done += sw;
                ticks += sw + 16;
            }
            if (pending.obj != 0) c.put(pending.obj, pending.span);
            c.out();
            continue;
        }
        while (ticks < next) {
            const WorkEntry e = w.tryget();
            WorkEntry x;
            if (e.obj != 0) {
                // Non-temporal: the object's line is read once, a few objects
                // from now, and should not push span records and bitmap words
                // (which the next objects reuse) out of the outer caches.
                // gc_mark lists of 0.5-1 GiB: 4-9% less time an object; tree,
                // binary_trees and gc_latency unchanged (bench/results/ab.md).
                // The span record's first line (size class, uniform type,
                // bounds, gcmarkBits: what scanobject and the shading of the
                // object's children read first) is wanted as soon.
                __builtin_prefetch(reinterpret_cast<const void*>(e.obj), 0, 0);
                __builtin_prefetch(e.span);
                if (n < kPrefetch) {
                    ring[(head + n++) % kPrefetch] = e;
                    continue;
                }
                x = ring[head];
                ring[head] = e;
                head = (head + 1) % kPrefetch;
            } else {
                if (n == 0) goto out;
                x = ring[head];
                head = (head + 1) % kPrefetch;
                n--;
            }
            const std::int64_t sw = scanobject<kCheck>(w, x.obj, x.span);
            done += sw;
            ticks += sw + 16;
        }
    }
out:
    // Objects still in the FIFO are grey: back to the work buffer.
    for (; n != 0; n--, head = (head + 1) % kPrefetch) w.put(ring[head].obj, ring[head].span);
    // The window goes on in this thread's next drain.
    if (pin == 0) {
        tune.win_ns += nanotime() - tune.seg_t0;
        tune.win_ticks = ticks - win0;
    }
    w.scan_work += done;
    w.flush();
    if (bg_credit && done != credited) {
        gcs.bg_credit.fetch_add(done - credited, std::memory_order_seq_cst);
        if (GA_UNLIKELY(gcs.assist_parked.load(std::memory_order_seq_cst) != 0)) wake_parked_assists();
    }
    return done;
}

std::int64_t drain(std::int64_t budget, bool bg_credit) {
    return GA_UNLIKELY(checking) ? drain_impl<true>(budget, bg_credit) : drain_impl<false>(budget, bg_credit);
}

void flush_wbuf(GcThread* t) {
    std::uint32_t n = t->wbn;
    if (n == 0) return;
    Gcw w;
    // Most entries are old values: objects marked long ago, far apart on a
    // large heap, each one's span table entry, record and mark word a cache
    // miss. Batched, the misses overlap (shade_batch): 26-43 against 56-122
    // ns an entry in gc_latency's flushes (bench/results/NOTES.md).
    for (std::uint32_t i = 0; i < n; i += kShadeBatch)
        shade_batch<false>(w, t->wbuf + i, n - i < kShadeBatch ? n - i : kShadeBatch);
    t->wbn = 0;
    w.flush();
}

namespace detail {
// A line of its own (read at every Ptr<> store; written twice a cycle).
alignas(64) std::uint32_t write_barrier_enabled __attribute__((visibility("default"))) = 0;

// Go's hybrid barrier: shade the old value (deletion, Yuasa) and the new one
// (insertion, Dijkstra). Buffered: the pointers are recorded and shaded in a
// batch when the buffer fills, or by the collector with the world stopped.
// Runs inside the caller's nosuspend region (gc::store).
void barrier_slow(void* const* slot, void* newval) {
    GcThread* t = tls_gc_thread;
    if (t == nullptr) {
        // An unregistered thread storing a collected pointer: register it (its
        // stack holds collected pointers). It cannot be stopped before it is
        // registered, so registering inside this nosuspend region is safe.
        register_thread();
        t = tls_gc_thread;
    }
    if (gcs.phase.load(std::memory_order_relaxed) != kPhaseMark) return;
    std::uintptr_t old = __atomic_load_n(reinterpret_cast<const std::uintptr_t*>(slot), __ATOMIC_RELAXED);
    std::uintptr_t nv = reinterpret_cast<std::uintptr_t>(newval);
    if (t->wbn + 2 > kWbBufEntries) flush_wbuf(t);
    if (maybe_heap(old)) t->wbuf[t->wbn++] = old;
    if (maybe_heap(nv)) t->wbuf[t->wbn++] = nv;
}
}  // namespace detail


// ---- checkmark (world stopped, marking complete) ----
static void clear_checkmarks(MSpan* s, void*) {
    if (s->checkmarkBits != nullptr) {
        ga_free(s->checkmarkBits);
        s->checkmarkBits = nullptr;
    }
}

void checkmark_run() {
    checking = true;
    {
        Gcw w;
        w.check = true;
        for_each_thread(scan_thread_stack, &w);
        w.flush();
    }
    roots_scan_checkmark();
    drain(-1);
    checking = false;
    for_all_spans(clear_checkmarks, nullptr);
}

// Used by roots scanning in collector.cpp during checkmark.
bool checkmark_active() { return checking; }
void scan_conservative_check(std::uintptr_t lo, std::uintptr_t hi) {
    Gcw w;
    w.check = checking;
    w.src = "a root (Root<T>, root range or finalizer)";
    scan_conservative_w(w, lo, hi);
    w.flush();
}

}  // namespace goalloc::gc
