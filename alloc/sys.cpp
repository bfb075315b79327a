// sys.cpp — Linux implementation of the memory states (see sys.h).
//
// The only file of goalloc that calls mmap, munmap, madvise or mprotect.
#include "sys.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "internal.h"

namespace goalloc::sys {

Stats stats;

static std::atomic<int> injected_failures{0};

void inject_failures(int count) { injected_failures.store(count, std::memory_order_relaxed); }

static bool should_fail() {
    int n = injected_failures.load(std::memory_order_relaxed);
    while (n > 0) {
        if (injected_failures.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
    }
    return false;
}

void* reserve(void* hint, std::size_t n, std::size_t align) {
    if (should_fail()) return nullptr;
    int saved = errno;
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    if (hint != nullptr) {
        void* p = mmap(hint, n, PROT_NONE, flags, -1, 0);
        if (p == hint) {
            stats.reserved.fetch_add(n, std::memory_order_relaxed);
            errno = saved;
            return p;
        }
        if (p != MAP_FAILED) munmap(p, n);
    }
    // Over-reserve and trim to the alignment.
    std::size_t total = n + align;
    if (total < n) return nullptr;
    void* p = mmap(nullptr, total, PROT_NONE, flags, -1, 0);
    errno = saved;
    if (p == MAP_FAILED) return nullptr;
    std::uintptr_t start = reinterpret_cast<std::uintptr_t>(p);
    std::uintptr_t aligned = (start + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
    if (aligned > start) munmap(p, aligned - start);
    std::uintptr_t end = start + total, want_end = aligned + n;
    if (end > want_end) munmap(reinterpret_cast<void*>(want_end), end - want_end);
    stats.reserved.fetch_add(n, std::memory_order_relaxed);
    return reinterpret_cast<void*>(aligned);
}

bool map(void* v, std::size_t n) {
    if (should_fail()) return false;
    int saved = errno;
    // mmap over the reservation (as Go's sysMap) rather than mprotect, so the
    // range is a fresh private mapping with its own commit charge.
    void* p = mmap(v, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    errno = saved;
    if (p == MAP_FAILED) return false;
    stats.prepared.fetch_add(n, std::memory_order_relaxed);
    return true;
}

bool map_ahead(void* v, std::size_t n) {
    int saved = errno;
    void* p = mmap(v, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    errno = saved;
    return p != MAP_FAILED;
}

void take_ahead(std::size_t n) { stats.prepared.fetch_add(n, std::memory_order_relaxed); }

void used(void*, std::size_t n) {
    stats.prepared.fetch_sub(n, std::memory_order_relaxed);
    stats.ready.fetch_add(n, std::memory_order_relaxed);
}

void populate(void* v, std::size_t n) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
    int saved = errno;
    madvise(v, n, MADV_POPULATE_WRITE);
    errno = saved;
}

// x86-64's PMD size: a transparent huge page.
static constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;

// The whole huge pages inside [v, v+n): [*b, *e), empty if *b >= *e.
static void whole_huge_pages(void* v, std::size_t n, std::uintptr_t* b, std::uintptr_t* e) {
    *b = (reinterpret_cast<std::uintptr_t>(v) + kHugePage - 1) & ~(kHugePage - 1);
    *e = (reinterpret_cast<std::uintptr_t>(v) + n) & ~(kHugePage - 1);
}

void hugepage(void* v, std::size_t n) {
    std::uintptr_t b, e;
    whole_huge_pages(v, n, &b, &e);
    if (b >= e) return;
    int saved = errno;
    madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
    errno = saved;
}

bool thp_disabled() {
    // Read once: the setting is the administrator's, and collapse asks for
    // it once per early arena.
    static const bool disabled = [] {
        int saved = errno;
        bool off = true;  // no file: no THP in this kernel
        int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            char buf[128];
            ssize_t r = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (r > 0) {
                buf[r] = 0;
                off = std::strstr(buf, "[never]") != nullptr;
            }
        }
        errno = saved;
        return off;
    }();
    return disabled;
}

bool collapse(void* v, std::size_t n) {
#ifndef MADV_COLLAPSE
    constexpr int MADV_COLLAPSE = 25;  // <linux/mman.h>, Linux 6.1; older kernels answer EINVAL
#endif
    // MADV_COLLAPSE, unlike MADV_HUGEPAGE, ignores the sysfs settings
    // (madvise(2)): a system that turned huge pages off keeps them off.
    if (thp_disabled()) return false;
    std::uintptr_t b, e;
    whole_huge_pages(v, n, &b, &e);
    int saved = errno;
    bool ok = true;
    for (; b < e; b += kHugePage)
        if (madvise(reinterpret_cast<void*>(b), kHugePage, MADV_COLLAPSE) != 0 && errno == EINVAL) {
            ok = false;
            break;
        }
    errno = saved;
    return ok;
}

void unused(void* v, std::size_t n) {
    int saved = errno;
    madvise(v, n, MADV_DONTNEED);
    errno = saved;
    stats.ready.fetch_sub(n, std::memory_order_relaxed);
    stats.prepared.fetch_add(n, std::memory_order_relaxed);
}

void free(void* v, std::size_t n, std::size_t prepared, std::size_t ready) {
    int saved = errno;
    munmap(v, n);
    errno = saved;
    stats.reserved.fetch_sub(n, std::memory_order_relaxed);
    stats.prepared.fetch_sub(prepared, std::memory_order_relaxed);
    stats.ready.fetch_sub(ready, std::memory_order_relaxed);
}

void* alloc(std::size_t n) {
    if (should_fail()) return nullptr;
    int saved = errno;
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = saved;
    if (p == MAP_FAILED) return nullptr;
    stats.metadata.fetch_add(n, std::memory_order_relaxed);
    return p;
}

void* alloc_huge(std::size_t n) {
    if (should_fail()) return nullptr;
    int saved = errno;
    void* m = mmap(nullptr, n + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        errno = saved;
        return nullptr;
    }
    auto b = reinterpret_cast<std::uintptr_t>(m);
    std::uintptr_t a = (b + kHugePage - 1) & ~(kHugePage - 1);
    if (a > b) munmap(m, a - b);
    if (b + kHugePage > a) munmap(reinterpret_cast<void*>(a + n), b + kHugePage - a);
    madvise(reinterpret_cast<void*>(a), n, MADV_HUGEPAGE);
    errno = saved;
    stats.metadata.fetch_add(n, std::memory_order_relaxed);
    return reinterpret_cast<void*>(a);
}

void free_metadata(void* v, std::size_t n) {
    int saved = errno;
    munmap(v, n);
    errno = saved;
    stats.metadata.fetch_sub(n, std::memory_order_relaxed);
}

}  // namespace goalloc::sys
