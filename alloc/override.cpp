// override.cpp — the drop-in surface: the C library's allocation API, glibc's
// internal aliases and extensions, and every C++ operator new/delete form, all
// on goalloc's heap. Linked into libgoalloc.so and libgoalloc.a, so both
// `LD_PRELOAD=libgoalloc.so prog` and `-lgoalloc` replace the allocator.
//
// Semantics follow glibc where the standards leave room (documented per
// function). Nothing here calls into the C library's allocator, dlsym or stdio.
// This file is compiled with exceptions (operator new throws std::bad_alloc).
#include <errno.h>
#include <malloc.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "goalloc/goalloc.h"
#include "malloc_impl.h"

#define GA_EXPORT extern "C" __attribute__((visibility("default")))

using namespace goalloc;

namespace {

bool valid_align(std::size_t a) { return a != 0 && (a & (a - 1)) == 0; }

// glibc's memalign: an alignment that is not a power of two is rounded up.
std::size_t round_align(std::size_t a) {
    if (a <= 8) return 8;
    if (valid_align(a)) return a;
    if (a > (std::size_t{1} << 62)) return 0;
    return std::size_t{1} << (64 - __builtin_clzll(a));
}

void* memalign_impl(std::size_t align, std::size_t n) {
    std::size_t a = round_align(align);
    if (a == 0) {
        errno = EINVAL;
        return nullptr;
    }
    return aligned_impl(a, n);
}

constexpr std::size_t kOSPage = 4096;  // valloc/pvalloc: the OS page, as glibc

int posix_memalign_impl(void** out, std::size_t align, std::size_t n) {
    if (!valid_align(align) || align % sizeof(void*) != 0) return EINVAL;
    int saved = errno;
    void* p = aligned_impl(align, n);
    errno = saved;
    if (p == nullptr) return ENOMEM;
    *out = p;
    return 0;
}

void* pvalloc_impl(std::size_t n) {
    std::size_t r = (n + kOSPage - 1) & ~(kOSPage - 1);
    if (r < n) {
        errno = ENOMEM;
        return nullptr;
    }
    return aligned_impl(kOSPage, r == 0 ? kOSPage : r);
}

}  // namespace

// ---- C library ----

GA_EXPORT void* malloc(size_t n) { return malloc_any(n); }
GA_EXPORT void free(void* p) { free_any("free", p); }
GA_EXPORT void cfree(void* p) { free_any("cfree", p); }
GA_EXPORT void* calloc(size_t n, size_t size) { return calloc_impl(n, size); }
// realloc(p, 0) frees p and returns NULL, as glibc does.
GA_EXPORT void* realloc(void* p, size_t n) { return realloc_impl("realloc", p, n); }

GA_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return nullptr;
    }
    return realloc_impl("reallocarray", p, total);
}

// posix_memalign: EINVAL unless alignment is a power of two multiple of
// sizeof(void*); on error *out is untouched and errno is preserved.
GA_EXPORT int posix_memalign(void** out, size_t align, size_t n) { return posix_memalign_impl(out, align, n); }

// aligned_alloc: any power of two (glibc >= 2.38 rejects others with EINVAL).
GA_EXPORT void* aligned_alloc(size_t align, size_t n) {
    if (!valid_align(align)) {
        errno = EINVAL;
        return nullptr;
    }
    return aligned_impl(align, n);
}

GA_EXPORT void* memalign(size_t align, size_t n) { return memalign_impl(align, n); }
GA_EXPORT void* valloc(size_t n) { return aligned_impl(kOSPage, n); }

GA_EXPORT void* pvalloc(size_t n) { return pvalloc_impl(n); }

GA_EXPORT size_t malloc_usable_size(void* p) {
    if (p == nullptr) return 0;
    return usable_impl("malloc_usable_size", p);
}

// C23. The size hints are not needed: the span knows the size.
GA_EXPORT void free_sized(void* p, size_t) { free_any("free_sized", p); }
GA_EXPORT void free_aligned_sized(void* p, size_t, size_t) { free_any("free_aligned_sized", p); }

// ---- glibc internal aliases (used by some programs and by glibc itself) ----

GA_EXPORT void* __libc_malloc(size_t n) { return malloc_any(n); }
GA_EXPORT void __libc_free(void* p) { free_any("free", p); }
GA_EXPORT void* __libc_calloc(size_t n, size_t size) { return calloc_impl(n, size); }
GA_EXPORT void* __libc_realloc(void* p, size_t n) { return realloc_impl("realloc", p, n); }
GA_EXPORT void* __libc_memalign(size_t align, size_t n) { return memalign_impl(align, n); }
// Called directly, not through the PLT, so the aliases behave exactly as the
// functions they stand for whatever else is preloaded.
GA_EXPORT void* __libc_valloc(size_t n) { return aligned_impl(kOSPage, n); }
GA_EXPORT void* __libc_pvalloc(size_t n) { return pvalloc_impl(n); }
GA_EXPORT int __posix_memalign(void** out, size_t align, size_t n) { return posix_memalign_impl(out, align, n); }

// ---- glibc extensions ----

// Gives every free page back to the OS; 1 if memory was released (glibc).
GA_EXPORT int malloc_trim(size_t) { return ga_release_free_memory() > 0 ? 1 : 0; }

GA_EXPORT struct mallinfo2 mallinfo2(void) {
    ga_stats_t s;
    ga_stats(&s);
    struct mallinfo2 mi;
    std::memset(&mi, 0, sizeof mi);
    mi.arena = s.bytes_mapped;                        // bytes obtained from the OS
    mi.ordblks = s.heap_pages_free;                   // free pages in the page heap
    mi.hblks = s.large_objects;                       // large objects (own spans)
    mi.hblkhd = mheap.large_bytes.load(std::memory_order_relaxed);  // their bytes
    // As glibc: uordblks excludes the large objects counted in hblkhd.
    mi.uordblks = s.bytes_in_use > mi.hblkhd ? s.bytes_in_use - mi.hblkhd : 0;
    mi.fordblks = s.bytes_mapped > s.bytes_in_use ? s.bytes_mapped - s.bytes_in_use : 0;
    mi.keepcost = s.bytes_released;                   // mapped but given back to the OS
    return mi;
}

static int clamp_int(size_t v) { return v > 0x7fffffff ? 0x7fffffff : static_cast<int>(v); }

GA_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    mi.arena = clamp_int(m2.arena);
    mi.ordblks = clamp_int(m2.ordblks);
    mi.smblks = 0;
    mi.hblks = clamp_int(m2.hblks);
    mi.hblkhd = clamp_int(m2.hblkhd);
    mi.usmblks = 0;
    mi.fsmblks = 0;
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.keepcost = clamp_int(m2.keepcost);
    return mi;
}

GA_EXPORT void malloc_stats(void) { print_stats(); }

// Accepted and ignored: glibc's tunables do not apply to goalloc.
GA_EXPORT int mallopt(int, int) { return 1; }

// ---- C++ ----

namespace {

[[gnu::noinline]] void* new_slow(std::size_t n, std::size_t align, bool nothrow) {
    for (;;) {
        void* p = align ? aligned_impl(align, n) : malloc_any(n);
        if (p != nullptr) return p;
        std::new_handler h = std::get_new_handler();
        if (h == nullptr) {
            if (nothrow) return nullptr;
            throw std::bad_alloc();
        }
        if (nothrow) {
            try {
                h();
            } catch (...) {
                return nullptr;
            }
        } else {
            h();
        }
    }
}

inline void* new_impl(std::size_t n) {
    void* p = malloc_any(n);
    return GA_LIKELY(p != nullptr) ? p : new_slow(n, 0, false);
}

inline void* new_aligned(std::size_t n, std::align_val_t a, bool nothrow) {
    std::size_t al = static_cast<std::size_t>(a);
    if (!valid_align(al)) {
        if (nothrow) return nullptr;
        throw std::bad_alloc();
    }
    void* p = aligned_impl(al, n);
    return GA_LIKELY(p != nullptr) ? p : new_slow(n, al, nothrow);
}

}  // namespace

#define GA_CXX __attribute__((visibility("default")))

GA_CXX void* operator new(std::size_t n) { return new_impl(n); }
GA_CXX void* operator new[](std::size_t n) { return new_impl(n); }
GA_CXX void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    void* p = malloc_any(n);
    if (GA_LIKELY(p != nullptr)) return p;
    try {
        return new_slow(n, 0, true);
    } catch (...) {
        return nullptr;
    }
}
GA_CXX void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
GA_CXX void* operator new(std::size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
GA_CXX void* operator new[](std::size_t n, std::align_val_t a) { return new_aligned(n, a, false); }
GA_CXX void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return new_aligned(n, a, true);
    } catch (...) {
        return nullptr;
    }
}
GA_CXX void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
    return operator new(n, a, t);
}

GA_CXX void operator delete(void* p) noexcept { free_any("operator delete", p); }
GA_CXX void operator delete[](void* p) noexcept { free_any("operator delete[]", p); }
GA_CXX void operator delete(void* p, const std::nothrow_t&) noexcept { free_any("operator delete", p); }
GA_CXX void operator delete[](void* p, const std::nothrow_t&) noexcept { free_any("operator delete[]", p); }
GA_CXX void operator delete(void* p, std::size_t) noexcept { free_any("operator delete", p); }
GA_CXX void operator delete[](void* p, std::size_t) noexcept { free_any("operator delete[]", p); }
GA_CXX void operator delete(void* p, std::align_val_t) noexcept { free_any("operator delete", p); }
GA_CXX void operator delete[](void* p, std::align_val_t) noexcept { free_any("operator delete[]", p); }
GA_CXX void operator delete(void* p, std::size_t, std::align_val_t) noexcept { free_any("operator delete", p); }
GA_CXX void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { free_any("operator delete[]", p); }
GA_CXX void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    free_any("operator delete", p);
}
GA_CXX void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    free_any("operator delete[]", p);
}
