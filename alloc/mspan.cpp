// mspan.cpp — span set-up, bitmap counting, remote-free draining, misuse reports.
#include "mspan.h"

namespace goalloc {

static std::uint32_t span_nelems(std::uint32_t np, int sc, std::size_t reserve) {
    if (sc == 0) return 1;
    return static_cast<std::uint32_t>((std::uintptr_t{np} * kPageSize - reserve) / class_to_size[sc]);
}

std::uint32_t MSpan::bitmap_words(std::uint32_t np, int sc, std::size_t reserve) {
    return (span_nelems(np, sc, reserve) + 63) / 64;
}

void MSpan::init(std::uintptr_t b, std::uint32_t np, int sc, SpanKind k, std::size_t reserve, void* block) {
    base = b;
    npages = np;
    sizeclass = static_cast<std::uint8_t>(sc);
    kind = k;
    spanclass = make_spanclass(sc, k == SpanKind::Malloc);
    nelems = span_nelems(np, sc, reserve);
    if (sc == 0) {
        elemsize = std::uintptr_t{np} * kPageSize - reserve;
        divMul = 0;
    } else {
        elemsize = class_to_size[sc];
        divMul = class_to_divmagic[sc];
    }
    limit = base + nelems * elemsize;
    nwords = static_cast<std::uint8_t>((nelems + 63) / 64);
    bitBlock = block;
    auto* bits = static_cast<std::atomic<std::uint64_t>*>(block);
    allocBits = bits;
    bool remote_inline = nwords <= kInlineRemoteWords;
    if (k == SpanKind::Collected) {
        gcmarkBits = bits + nwords;
        remoteBits = remote_inline ? remoteInline : bits + 2 * nwords;
    } else {
        gcmarkBits = nullptr;
        remoteBits = remote_inline ? remoteInline : bits + ((nwords + 7) & ~7u);  // the next cache line
    }
    for (std::uint32_t w = 0; w < nwords; w++) {
        std::uint64_t t = tail_mask(w);
        allocBits[w].store(t, std::memory_order_relaxed);
        if (gcmarkBits != nullptr) gcmarkBits[w].store(t, std::memory_order_relaxed);
        remoteBits[w].store(0, std::memory_order_relaxed);
    }
    allocCount.store(0, std::memory_order_relaxed);
    remoteCount.store(0, std::memory_order_relaxed);
    owner.store(nullptr, std::memory_order_relaxed);
    notified.store(0, std::memory_order_relaxed);
    notifyNext = nullptr;
    list = kListNone;
    next = prev = nullptr;
    heapBits = nullptr;
    gcflags = 0;
    scan_dense.store(0, std::memory_order_relaxed);
    uniform.store(nullptr, std::memory_order_relaxed);
    specials.store(0, std::memory_order_relaxed);
    checkmarkBits = nullptr;
}

std::uint64_t MSpan::tail_mask(std::uint32_t w) const {
    std::uint32_t first = w * 64;
    if (first + 64 <= nelems) return 0;
    if (first >= nelems) return ~std::uint64_t{0};
    return ~std::uint64_t{0} << (nelems - first);
}

std::uint32_t MSpan::count_alloc() const {
    // Tail bits (>= nelems) are always set: count every bit, subtract them.
    std::uint32_t n = 0;
    for (std::uint32_t w = 0; w < nwords; w++) n += popcount64(allocBits[w].load(std::memory_order_relaxed));
    return n - (nwords * 64u - nelems);
}

std::uint32_t MSpan::count_remote() const {
    std::uint32_t n = 0;
    for (std::uint32_t w = 0; w < nwords; w++)
        n += static_cast<std::uint32_t>(popcount64(remoteBits[w].load(std::memory_order_relaxed)));
    return n;
}

std::uint32_t MSpan::drain_remote() {
    std::uint32_t n = 0;
    for (std::uint32_t w = 0; w < nwords; w++) {
        if (remoteBits[w].load(std::memory_order_relaxed) == 0) continue;
        std::uint64_t x = remoteBits[w].exchange(0, std::memory_order_acquire);
        std::uint64_t a = allocBits[w].load(std::memory_order_relaxed);
        if (GA_UNLIKELY(x & ~a)) {
            std::uint32_t idx = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(x & ~a));
            misuse_double_free("free", object_base(idx), this);
        }
        allocBits[w].store(a & ~x, std::memory_order_relaxed);
        n += static_cast<std::uint32_t>(popcount64(x));
    }
    if (n != 0) remoteCount.fetch_sub(n, std::memory_order_release);
    return n;
}

void misuse_double_free(const char* fn, std::uintptr_t p, const MSpan* s) {
    Msg m;
    m.s("goalloc: ").s(fn).s("(): double free of ").hex(p);
    if (s != nullptr) {
        if (s->sizeclass != 0)
            m.s(" (size class ").dec(s->sizeclass).s(", ").dec(s->elemsize).s(" bytes)");
        else
            m.s(" (large object, ").dec(s->elemsize).s(" bytes)");
    }
    m.s("\n");
    m.fatal();
}

void misuse_invalid(const char* fn, std::uintptr_t p, const char* why) {
    Msg m;
    m.s("goalloc: ").s(fn).s("(): invalid pointer ").hex(p).s(" (").s(why).s(")\n");
    m.fatal();
}

void misuse_interior(const char* fn, std::uintptr_t p, std::uintptr_t start) {
    Msg m;
    m.s("goalloc: ").s(fn).s("(): invalid pointer ").hex(p).s(" (interior pointer: object starts at ")
        .hex(start).s(")\n");
    m.fatal();
}

}  // namespace goalloc
