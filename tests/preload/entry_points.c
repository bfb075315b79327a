/*
 * entry_points.c — every C entry point of the drop-in allocator, and glibc's
 * semantics for each, checked in a process that gets goalloc only through
 * LD_PRELOAD (run it with scripts/goalloc-run or LD_PRELOAD=libgoalloc.so).
 *
 * Self-checking: prints a FAIL line per failed check and "N passed, M failed"
 * at the end; exits 0 only if nothing failed (3 if goalloc is not in use).
 *
 * Sections: the exported symbols resolve to libgoalloc; malloc/calloc/realloc/
 * reallocarray; posix_memalign/aligned_alloc/memalign/valloc/pvalloc; absurd
 * sizes; errno across free; malloc_usable_size; calloc zeroes reused memory;
 * glibc aliases, cfree, free_sized; mallinfo/mallinfo2; malloc_stats; mallopt;
 * malloc_trim really releases memory.
 */
#include "preload_common.h"

#include <errno.h>
#include <stdalign.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* mallinfo */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
/* p is used after a realloc/reallocarray that failed on purpose (and kept p) */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* Entry points glibc's headers no longer declare (or never did): called
 * through pointers from dlsym, which the symbol section checks are goalloc's. */
typedef void* (*malloc_fn)(size_t);
typedef void (*free_fn)(void*);
typedef void* (*calloc_fn)(size_t, size_t);
typedef void* (*realloc_fn)(void*, size_t);
typedef void* (*memalign_fn)(size_t, size_t);
typedef int (*posix_memalign_fn)(void**, size_t, size_t);
typedef void (*free_sized_fn)(void*, size_t);
typedef void (*free_aligned_sized_fn)(void*, size_t, size_t);

static malloc_fn p_libc_malloc, p_libc_valloc, p_libc_pvalloc;
static free_fn p_libc_free, p_cfree;
static calloc_fn p_libc_calloc;
static realloc_fn p_libc_realloc;
static memalign_fn p_libc_memalign;
static posix_memalign_fn p_posix_memalign_alias;
static free_sized_fn p_free_sized;
static free_aligned_sized_fn p_free_aligned_sized;

static size_t page_size;

/* Sizes no allocator can satisfy: every allocation function must return NULL
 * with errno ENOMEM (never crash, never return memory). volatile so that the
 * compiler neither warns about them nor folds the calls. */
static volatile size_t absurd[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4095, SIZE_MAX / 2, SIZE_MAX / 2 + 1,
    (size_t)PTRDIFF_MAX + 1, (size_t)1 << 50, (size_t)1 << 47,
};
#define N_ABSURD (sizeof absurd / sizeof absurd[0])

static uint64_t live(void) {
    pl_stats s;
    pl_stats_get(&s);
    return s.live_objects;
}

static int aligned_to(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static size_t next_pow2(size_t a) {
    size_t r = 1;
    while (r < a) r <<= 1;
    return r;
}

/* Writes the whole usable size, so a short object would be caught by the
 * heap validator or by a neighbour's pattern. */
static void touch(void* p, size_t n, int byte) {
    if (p != NULL) memset(p, byte, n);
}

static int all_bytes(const void* p, size_t n, unsigned char b) {
    const unsigned char* c = (const unsigned char*)p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != b) return 0;
    return 1;
}

/* ---- 1. the exported surface -------------------------------------------- */

static const char* const c_symbols[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree", "__libc_malloc",
    "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign", "__libc_valloc",
    "__libc_pvalloc", "__posix_memalign", "malloc_trim", "mallinfo", "mallinfo2",
    "malloc_stats", "mallopt", "free_sized", "free_aligned_sized",
};

/* Every C++ operator new/delete form, mangled (x86-64: size_t is m). */
static const char* const cxx_symbols[] = {
    "_Znwm", "_Znam",                                              /* new, new[] */
    "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",                  /* nothrow */
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",                /* aligned */
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv",                                            /* delete, delete[] */
    "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvm", "_ZdaPvm",                                          /* sized */
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",              /* aligned */
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",            /* aligned + sized */
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

static void test_symbols(void) {
    for (size_t i = 0; i < sizeof c_symbols / sizeof c_symbols[0]; i++)
        CHECK(pl_sym_in_goalloc(c_symbols[i]), "%s is not resolved to libgoalloc", c_symbols[i]);
    for (size_t i = 0; i < sizeof cxx_symbols / sizeof cxx_symbols[0]; i++)
        CHECK(pl_sym_in_goalloc(cxx_symbols[i]), "%s is not resolved to libgoalloc", cxx_symbols[i]);

    *(void**)&p_libc_malloc = pl_sym("__libc_malloc");
    *(void**)&p_libc_free = pl_sym("__libc_free");
    *(void**)&p_libc_calloc = pl_sym("__libc_calloc");
    *(void**)&p_libc_realloc = pl_sym("__libc_realloc");
    *(void**)&p_libc_memalign = pl_sym("__libc_memalign");
    *(void**)&p_libc_valloc = pl_sym("__libc_valloc");
    *(void**)&p_libc_pvalloc = pl_sym("__libc_pvalloc");
    *(void**)&p_posix_memalign_alias = pl_sym("__posix_memalign");
    *(void**)&p_cfree = pl_sym("cfree");
    *(void**)&p_free_sized = pl_sym("free_sized");
    *(void**)&p_free_aligned_sized = pl_sym("free_aligned_sized");
}

/* ---- 2. malloc, calloc, realloc, reallocarray --------------------------- */

static void test_malloc(void) {
    /* The proof goalloc is in use: Go's size class for 100 bytes is 112. */
    void* p = malloc(100);
    CHECK(p != NULL && malloc_usable_size(p) == 112, "malloc_usable_size(malloc(100)) = %zu, want 112",
          p ? malloc_usable_size(p) : 0);
    free(p);
    CHECK(pl_sym("ga_malloc") != NULL, "dlsym(RTLD_DEFAULT, \"ga_malloc\") is NULL");

    /* malloc(0): a unique, non-NULL pointer each time, freeable. */
    uint64_t l0 = live();
    void* z1 = malloc(0);
    void* z2 = malloc(0);
    CHECK(z1 != NULL && z2 != NULL, "malloc(0) returned NULL (%p, %p)", z1, z2);
    CHECK(z1 != z2, "two malloc(0) returned the same pointer %p", z1);
    CHECK(live() == l0 + 2, "two malloc(0): live_objects %llu -> %llu", (unsigned long long)l0,
          (unsigned long long)live());
    free(z1);
    free(z2);
    CHECK(live() == l0, "malloc(0) objects not freed");

    /* Sizes across small classes, the 32 KiB boundary and large objects:
     * usable >= request, contents survive neighbours being written. */
    static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 24, 25, 100, 1000, 1024, 1025, 4095,
                                   4096, 4097, 8192, 32767, 32768, 32769, 65536, 100000,
                                   1 * MiB, 3 * MiB + 5};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void* ptrs[NS];
    for (int i = 0; i < NS; i++) {
        ptrs[i] = malloc(sizes[i]);
        CHECK(ptrs[i] != NULL, "malloc(%zu) = NULL", sizes[i]);
        size_t u = ptrs[i] ? malloc_usable_size(ptrs[i]) : 0;
        CHECK(u >= sizes[i], "malloc_usable_size(malloc(%zu)) = %zu", sizes[i], u);
        CHECK(aligned_to(ptrs[i], 8), "malloc(%zu) = %p is not 8-aligned", sizes[i], ptrs[i]);
        touch(ptrs[i], u, 0x40 + i);
    }
    for (int i = 0; i < NS; i++) {
        if (ptrs[i] == NULL) continue;
        size_t u = malloc_usable_size(ptrs[i]);
        CHECK(all_bytes(ptrs[i], u, (unsigned char)(0x40 + i)), "malloc(%zu) contents overwritten", sizes[i]);
        free(ptrs[i]);
    }
    CHECK(live() == l0, "live_objects %llu after freeing everything, want %llu",
          (unsigned long long)live(), (unsigned long long)l0);

    /* calloc: zeroed; overflow of n * size -> NULL + ENOMEM. */
    char* c = (char*)calloc(10, 10);
    CHECK(c != NULL && all_bytes(c, 100, 0), "calloc(10, 10) not zeroed");
    free(c);
    void* c0 = calloc(0, 0);
    void* c1 = calloc(0, 16);
    void* c2 = calloc(16, 0);
    CHECK(c0 && c1 && c2 && c0 != c1 && c1 != c2 && c0 != c2, "calloc of 0 bytes: %p %p %p", c0, c1, c2);
    free(c0);
    free(c1);
    free(c2);
    static volatile size_t half = SIZE_MAX / 2 + 1;
    static volatile size_t big32 = (size_t)1 << 32;
    errno = 0;
    CHECK(calloc(half, 2) == NULL && errno == ENOMEM, "calloc(SIZE_MAX/2+1, 2): errno %d", errno);
    errno = 0;
    CHECK(calloc(big32, big32) == NULL && errno == ENOMEM, "calloc(2^32, 2^32): errno %d", errno);
    errno = 0;
    static volatile size_t third = SIZE_MAX / 3 + 1;
    CHECK(calloc(3, third) == NULL && errno == ENOMEM, "calloc(3, SIZE_MAX/3+1): errno %d", errno);

    /* realloc(NULL, n) == malloc(n). */
    l0 = live();
    unsigned char* r = (unsigned char*)realloc(NULL, 100);
    CHECK(r != NULL && malloc_usable_size(r) == 112, "realloc(NULL, 100): usable %zu",
          r ? malloc_usable_size(r) : 0);
    CHECK(live() == l0 + 1, "realloc(NULL, 100) did not allocate one object");
    /* Growing and shrinking keep the contents, across classes and to large. */
    for (int i = 0; i < 100; i++) r[i] = (unsigned char)(i * 7 + 1);
    static const size_t steps[] = {5000, 40000, 3 * MiB, 3 * MiB + 100000, 200000, 50, 100};
    size_t kept = 100;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0] && r != NULL; s++) {
        unsigned char* n = (unsigned char*)realloc(r, steps[s]);
        CHECK(n != NULL, "realloc(p, %zu) = NULL", steps[s]);
        if (n == NULL) break;
        r = n;
        size_t check = kept < steps[s] ? kept : steps[s];
        int same = 1;
        for (size_t i = 0; i < check && i < 100; i++) same &= r[i] == (unsigned char)(i * 7 + 1);
        CHECK(same, "realloc to %zu lost the contents", steps[s]);
        CHECK(malloc_usable_size(r) >= steps[s], "realloc(p, %zu): usable %zu", steps[s], malloc_usable_size(r));
        if (steps[s] > 100) memset(r + 100, 0xee, steps[s] - 100);
        kept = check;
        CHECK(live() == l0 + 1, "realloc changed the number of live objects to %llu (want %llu)",
              (unsigned long long)live(), (unsigned long long)(l0 + 1));
    }
    /* realloc(p, 0) frees p and returns NULL (glibc). */
    errno = 0;
    void* r0 = realloc(r, 0);
    CHECK(r0 == NULL, "realloc(p, 0) = %p, want NULL", r0);
    CHECK(live() == l0, "realloc(p, 0) did not free p (live %llu, want %llu)", (unsigned long long)live(),
          (unsigned long long)l0);

    /* A failed realloc leaves p allocated and intact. */
    char* keep = (char*)malloc(300);
    memset(keep, 'k', 300);
    for (size_t i = 0; i < N_ABSURD; i++) {
        errno = 0;
        void* q = realloc(keep, absurd[i]);
        CHECK(q == NULL && errno == ENOMEM, "realloc(p, %zu) = %p errno %d", absurd[i], q, errno);
    }
    CHECK(all_bytes(keep, 300, 'k'), "failed realloc damaged p");

    /* reallocarray: like realloc(p, n * size), overflow -> NULL + ENOMEM, p kept. */
    char* ra = (char*)reallocarray(keep, 100, 10);
    CHECK(ra != NULL && malloc_usable_size(ra) >= 1000 && all_bytes(ra, 300, 'k'),
          "reallocarray(p, 100, 10) failed or lost contents");
    if (ra != NULL) keep = ra;
    uint64_t before = live();
    errno = 0;
    CHECK(reallocarray(keep, half, 3) == NULL && errno == ENOMEM,
          "reallocarray overflow: errno %d", errno);
    errno = 0;
    CHECK(reallocarray(keep, big32, big32) == NULL && errno == ENOMEM,
          "reallocarray(p, 2^32, 2^32): errno %d", errno);
    errno = 0;
    CHECK(reallocarray(NULL, half, 2) == NULL && errno == ENOMEM, "reallocarray(NULL, overflow): errno %d",
          errno);
    CHECK(live() == before && all_bytes(keep, 300, 'k'), "failed reallocarray freed or damaged p");
    void* rn = reallocarray(NULL, 7, 9);
    CHECK(rn != NULL && malloc_usable_size(rn) >= 63, "reallocarray(NULL, 7, 9)");
    free(rn);
    free(keep);
}

/* ---- 3. aligned allocation ----------------------------------------------- */

static void test_aligned(void) {
    static const size_t bad_posix[] = {0, 1, 2, 4, 3, 12, 24, 40, 48, 100, 4097, 3 * 4096, 65535};
    static const size_t good[] = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                                  16384, 65536, 1 * MiB, 2 * MiB};
    static const size_t sizes[] = {0, 1, 8, 24, 100, 1000, 4096, 5000, 32768, 40000, 1 * MiB + 1};
    void* const sentinel = (void*)(uintptr_t)0x5a5a5a50;

    for (size_t i = 0; i < sizeof bad_posix / sizeof bad_posix[0]; i++) {
        void* q = sentinel;
        int rc = posix_memalign(&q, bad_posix[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(align %zu) = %d, want EINVAL", bad_posix[i], rc);
        CHECK(q == sentinel, "posix_memalign(align %zu) wrote *p on error", bad_posix[i]);
        q = sentinel;
        rc = p_posix_memalign_alias ? p_posix_memalign_alias(&q, bad_posix[i], 64) : -1;
        CHECK(rc == EINVAL && q == sentinel, "__posix_memalign(align %zu) = %d", bad_posix[i], rc);
    }
    for (size_t i = 0; i < N_ABSURD; i++) {
        void* q = sentinel;
        int rc = posix_memalign(&q, 64, absurd[i]);
        CHECK(rc == ENOMEM && q == sentinel, "posix_memalign(64, %zu) = %d (p %p)", absurd[i], rc, q);
    }

    for (size_t a = 0; a < sizeof good / sizeof good[0]; a++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t al = good[a], n = sizes[s];
            void* q = sentinel;
            int rc = posix_memalign(&q, al, n);
            CHECK(rc == 0 && q != sentinel && q != NULL, "posix_memalign(%zu, %zu) = %d", al, n, rc);
            if (rc == 0) {
                CHECK(aligned_to(q, al), "posix_memalign(%zu, %zu) = %p misaligned", al, n, q);
                CHECK(malloc_usable_size(q) >= n, "posix_memalign(%zu, %zu): usable %zu", al, n,
                      malloc_usable_size(q));
                touch(q, n, 0x11);
                free(q);
            }
            errno = 0;
            void* b = aligned_alloc(al, n);
            CHECK(b != NULL && aligned_to(b, al) && malloc_usable_size(b) >= n, "aligned_alloc(%zu, %zu) = %p",
                  al, n, b);
            touch(b, n, 0x22);
            /* aligned memory is ordinary memory: realloc works on it */
            if (b != NULL && n > 0 && n < 100000) {
                void* g = realloc(b, n * 2 + 1);
                CHECK(g != NULL && all_bytes(g, n, 0x22), "realloc of aligned_alloc(%zu, %zu)", al, n);
                if (g != NULL) b = g;
            }
            free(b);
            void* m = memalign(al, n);
            CHECK(m != NULL && aligned_to(m, al) && malloc_usable_size(m) >= n, "memalign(%zu, %zu) = %p", al,
                  n, m);
            touch(m, n, 0x33);
            free(m);
            m = p_libc_memalign ? p_libc_memalign(al, n) : NULL;
            CHECK(m != NULL && aligned_to(m, al) && malloc_usable_size(m) >= n, "__libc_memalign(%zu, %zu)", al,
                  n);
            touch(m, n, 0x34);
            free(m);
            q = sentinel;
            rc = p_posix_memalign_alias ? p_posix_memalign_alias(&q, al, n) : -1;
            CHECK(rc == 0 && aligned_to(q, al), "__posix_memalign(%zu, %zu) = %d", al, n, rc);
            if (rc == 0) free(q);
        }
    }

    /* aligned_alloc: an alignment that is not a power of two -> NULL + EINVAL
     * (glibc >= 2.38). */
    static const size_t bad_aligned[] = {0, 3, 6, 24, 48, 100, 4097, 3 * 4096};
    for (size_t i = 0; i < sizeof bad_aligned / sizeof bad_aligned[0]; i++) {
        errno = 0;
        void* q = aligned_alloc(bad_aligned[i], 64);
        CHECK(q == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d, want NULL + EINVAL",
              bad_aligned[i], q, errno);
        free(q);
    }

    /* memalign: a non-power-of-two alignment is rounded up, like glibc. */
    static const size_t odd[] = {0, 1, 2, 3, 5, 12, 24, 48, 100, 3000, 5000, 3 * 4096, 3 * 65536, 1 * MiB + 1};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t want = next_pow2(odd[i]);
        if (want < 8) want = 8;
        void* m = memalign(odd[i], 100);
        CHECK(m != NULL && aligned_to(m, want) && malloc_usable_size(m) >= 100,
              "memalign(%zu, 100) = %p, want a %zu-aligned object", odd[i], m, want);
        touch(m, 100, 1);
        free(m);
    }

    /* valloc / pvalloc: page-aligned; pvalloc rounds the size up to pages. */
    static const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 40000, 1 * MiB + 3};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        size_t n = vs[i];
        size_t rounded = (n + page_size - 1) / page_size * page_size;
        if (rounded == 0) rounded = page_size;
        void* v = valloc(n);
        CHECK(v != NULL && aligned_to(v, page_size) && malloc_usable_size(v) >= n, "valloc(%zu) = %p", n, v);
        touch(v, n, 2);
        free(v);
        void* pv = pvalloc(n);
        CHECK(pv != NULL && aligned_to(pv, page_size) && malloc_usable_size(pv) >= rounded,
              "pvalloc(%zu) = %p usable %zu, want >= %zu", n, pv, pv ? malloc_usable_size(pv) : 0, rounded);
        touch(pv, rounded, 3); /* the whole rounded size is usable */
        free(pv);
        v = p_libc_valloc ? p_libc_valloc(n) : NULL;
        CHECK(v != NULL && aligned_to(v, page_size), "__libc_valloc(%zu) = %p", n, v);
        free(v);
        pv = p_libc_pvalloc ? p_libc_pvalloc(n) : NULL;
        CHECK(pv != NULL && aligned_to(pv, page_size) && malloc_usable_size(pv) >= rounded,
              "__libc_pvalloc(%zu) = %p", n, pv);
        touch(pv, rounded, 4);
        free(pv);
    }
}

/* ---- 4. absurd sizes: NULL + ENOMEM from every allocation function ------- */

static void test_absurd(void) {
    uint64_t l0 = live();
    for (size_t i = 0; i < N_ABSURD; i++) {
        size_t n = absurd[i];
#define ABSURD(call)                                                                          \
    do {                                                                                      \
        errno = 0;                                                                            \
        void* q_ = (call);                                                                    \
        CHECK(q_ == NULL && errno == ENOMEM, "%s with n=%zu: %p errno %d", #call, n, q_, errno); \
    } while (0)
        ABSURD(malloc(n));
        ABSURD(calloc(1, n));
        ABSURD(calloc(n, 1));
        ABSURD(realloc(NULL, n));
        ABSURD(reallocarray(NULL, n, 1));
        ABSURD(aligned_alloc(16, n));
        ABSURD(aligned_alloc(4096, n));
        ABSURD(aligned_alloc(1 * MiB, n));
        ABSURD(memalign(64, n));
        ABSURD(valloc(n));
        ABSURD(pvalloc(n));
        ABSURD(p_libc_malloc(n));
        ABSURD(p_libc_calloc(n, 1));
        ABSURD(p_libc_realloc(NULL, n));
        ABSURD(p_libc_memalign(64, n));
        ABSURD(p_libc_valloc(n));
        ABSURD(p_libc_pvalloc(n));
#undef ABSURD
    }
    CHECK(live() == l0, "absurd requests changed live_objects");
    /* The heap still works afterwards. */
    void* p = malloc(50);
    CHECK(p != NULL, "malloc after absurd requests");
    free(p);
}

/* ---- 5. free preserves errno -------------------------------------------- */

static void test_free_errno(void) {
    enum { N = 2000 };
    static void* ptrs[N];
    /* Small objects (enough to empty whole spans), large ones, NULL. */
    for (int i = 0; i < N; i++) ptrs[i] = malloc(i % 2 ? 1000 : 48);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        errno = EILSEQ;
        free(ptrs[i]);
        if (errno != EILSEQ) bad++;
    }
    CHECK(bad == 0, "free of small objects changed errno %d times", bad);
    bad = 0;
    for (int i = 0; i < 40; i++) ptrs[i] = malloc((size_t)(i + 1) * 100000);
    for (int i = 0; i < 40; i++) {
        errno = EILSEQ;
        free(ptrs[i]);
        if (errno != EILSEQ) bad++;
    }
    CHECK(bad == 0, "free of large objects changed errno %d times", bad);
    errno = EILSEQ;
    free(NULL);
    CHECK(errno == EILSEQ, "free(NULL) changed errno to %d", errno);
    /* The other free functions too. */
    void* a = malloc(10);
    void* b = malloc(100000);
    void* c = malloc(20);
    void* d = aligned_alloc(64, 64);
    errno = EILSEQ;
    p_cfree(a);
    p_libc_free(b);
    p_free_sized(c, 20);
    p_free_aligned_sized(d, 64, 64);
    CHECK(errno == EILSEQ, "cfree/__libc_free/free_sized/free_aligned_sized changed errno to %d", errno);
    /* And a free after malloc_trim has released the pages around. */
    void* e = malloc(200000);
    malloc_trim(0);
    errno = EILSEQ;
    free(e);
    malloc_trim(0);
    CHECK(errno == EILSEQ, "free after malloc_trim changed errno to %d", errno);
}

/* ---- 6. malloc_usable_size ------------------------------------------------ */

static void test_usable(void) {
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
    int bad = 0;
    for (size_t n = 0; n <= 40000; n += (n < 2048 ? 1 : 97)) {
        void* p = malloc(n);
        size_t u = malloc_usable_size(p);
        if (p == NULL || u < n) {
            if (bad++ < 5) CHECK(0, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
        } else {
            memset(p, 0x5c, u); /* all of it is usable */
        }
        free(p);
    }
    CHECK(bad == 0, "%d sizes with usable < request", bad);
    /* Go's size classes (a few samples). */
    static const size_t req[] = {1, 8, 9, 17, 25, 33, 49, 100, 129, 1025, 32768};
    static const size_t cls[] = {8, 8, 16, 24, 32, 48, 64, 112, 144, 1152, 32768};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        void* p = malloc(req[i]);
        CHECK(malloc_usable_size(p) == cls[i], "malloc_usable_size(malloc(%zu)) = %zu, Go's class is %zu",
              req[i], malloc_usable_size(p), cls[i]);
        free(p);
    }
}

/* ---- 7. calloc zeroes memory, also memory reused after free -------------- */

static void test_calloc_reuse(void) {
    static const size_t sizes[] = {8, 24, 100, 1000, 4000, 30000, 32768, 40000, 300000, 2 * MiB + 17};
    enum { N = 48 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        int count = n > 100000 ? 6 : N;
        void* ptrs[N];
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < count; i++) {
                ptrs[i] = malloc(n);
                if (ptrs[i]) memset(ptrs[i], 0xab, malloc_usable_size(ptrs[i]));
            }
            for (int i = 0; i < count; i++) free(ptrs[i]);
            if (round == 2) malloc_trim(0); /* last round: reuse released pages */
            int dirty = 0;
            for (int i = 0; i < count; i++) {
                ptrs[i] = calloc(1, n);
                if (ptrs[i] == NULL || !all_bytes(ptrs[i], n, 0)) dirty++;
            }
            CHECK(dirty == 0, "calloc(1, %zu) round %d: %d of %d objects not zeroed", n, round, dirty, count);
            /* calloc(n, 1) and the alias too */
            for (int i = 0; i < count; i++) {
                memset(ptrs[i], 0xcd, n);
                free(ptrs[i]);
            }
            dirty = 0;
            for (int i = 0; i < count; i++) {
                ptrs[i] = (i & 1) ? calloc(n, 1) : p_libc_calloc(n, 1);
                if (ptrs[i] == NULL || !all_bytes(ptrs[i], n, 0)) dirty++;
            }
            CHECK(dirty == 0, "calloc(%zu, 1) round %d: %d objects not zeroed", n, round, dirty);
            for (int i = 0; i < count; i++) free(ptrs[i]);
        }
    }
}

/* ---- 8. glibc aliases, cfree, free_sized, cross-family frees ------------- */

static void test_aliases(void) {
    uint64_t l0 = live();
    void* a = p_libc_malloc(100);
    CHECK(a != NULL && malloc_usable_size(a) == 112, "__libc_malloc(100): usable %zu",
          a ? malloc_usable_size(a) : 0);
    CHECK(live() == l0 + 1, "__libc_malloc did not allocate on goalloc's heap");
    a = p_libc_realloc(a, 5000);
    CHECK(a != NULL && malloc_usable_size(a) >= 5000, "__libc_realloc(p, 5000)");
    CHECK(p_libc_realloc(a, 0) == NULL && live() == l0, "__libc_realloc(p, 0) did not free");
    char* c = (char*)p_libc_calloc(100, 3);
    CHECK(c != NULL && all_bytes(c, 300, 0), "__libc_calloc");
    errno = 0;
    CHECK(p_libc_calloc((size_t)absurd[3], 3) == NULL && errno == ENOMEM, "__libc_calloc overflow: errno %d", errno);
    p_libc_free(c);
    CHECK(live() == l0, "__libc_free did not free");

    /* Every allocation function's memory can be freed by every free function. */
    void* objs[8];
    objs[0] = malloc(10);
    objs[1] = p_libc_malloc(40000);
    objs[2] = aligned_alloc(256, 300);
    objs[3] = memalign(4096, 10);
    objs[4] = valloc(10);
    objs[5] = pvalloc(10);
    objs[6] = calloc(3, 3);
    objs[7] = reallocarray(NULL, 3, 1000);
    CHECK(live() == l0 + 8, "8 allocations: live %llu, want %llu", (unsigned long long)live(),
          (unsigned long long)(l0 + 8));
    p_cfree(objs[0]);
    free(objs[1]);
    p_free_aligned_sized(objs[2], 256, 300);
    p_libc_free(objs[3]);
    p_free_sized(objs[4], 10);
    free(objs[5]);
    p_free_sized(objs[6], 9);
    p_cfree(objs[7]);
    CHECK(live() == l0, "cfree/free_sized/free_aligned_sized/__libc_free: live %llu, want %llu",
          (unsigned long long)live(), (unsigned long long)l0);
    /* NULL is accepted by every free function */
    p_cfree(NULL);
    p_libc_free(NULL);
    p_free_sized(NULL, 0);
    p_free_aligned_sized(NULL, 64, 0);
}

/* ---- 9. mallinfo / mallinfo2 -------------------------------------------- */

static void test_mallinfo(void) {
    enum { NS = 100, NL = 10 };
    void* small[NS];
    void* large[NL];
    struct mallinfo2 m0 = mallinfo2();
    struct mallinfo i0 = mallinfo();
    CHECK(m0.arena >= m0.uordblks, "mallinfo2: arena %zu < uordblks %zu", m0.arena, m0.uordblks);

    for (int i = 0; i < NS; i++) small[i] = malloc(1000);
    struct mallinfo2 m1 = mallinfo2();
    CHECK(m1.uordblks >= m0.uordblks + NS * 1000, "uordblks %zu -> %zu after %d x 1000 B", m0.uordblks,
          m1.uordblks, NS);
    CHECK(m1.hblks == m0.hblks, "hblks %zu -> %zu after small allocations", m0.hblks, m1.hblks);
    CHECK(m1.arena >= m1.uordblks, "arena %zu < uordblks %zu", m1.arena, m1.uordblks);

    for (int i = 0; i < NL; i++) large[i] = malloc(100 * KiB);
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo i2 = mallinfo();
    CHECK(m2.hblks == m1.hblks + NL, "hblks %zu -> %zu after %d large objects", m1.hblks, m2.hblks, NL);
    CHECK(m2.hblkhd >= m1.hblkhd + NL * 100 * KiB, "hblkhd %zu -> %zu after %d x 100 KiB", m1.hblkhd, m2.hblkhd,
          NL);
    /* As glibc: large objects are counted in hblkhd, not in uordblks. */
    CHECK(m2.uordblks == m1.uordblks, "uordblks %zu -> %zu after %d large objects", m1.uordblks, m2.uordblks, NL);
    CHECK(m2.uordblks + m2.hblkhd >= m1.uordblks + m1.hblkhd + NL * 100 * KiB,
          "uordblks+hblkhd %zu -> %zu after %d x 100 KiB", m1.uordblks + m1.hblkhd, m2.uordblks + m2.hblkhd, NL);
    CHECK(m2.arena >= m2.uordblks && m2.arena >= m1.arena, "arena %zu -> %zu (uordblks %zu)", m1.arena, m2.arena,
          m2.uordblks);
    CHECK(i2.hblks == i0.hblks + NL, "mallinfo().hblks %d -> %d", i0.hblks, i2.hblks);
    CHECK((size_t)i2.uordblks + (size_t)i2.hblkhd >= (size_t)i0.uordblks + (size_t)i0.hblkhd + NS * 1000 + NL * 100 * KiB,
          "mallinfo().uordblks+hblkhd %d+%d -> %d+%d", i0.uordblks, i0.hblkhd, i2.uordblks, i2.hblkhd);
    CHECK(i2.arena > 0 && (size_t)i2.arena >= (size_t)i2.uordblks, "mallinfo().arena %d", i2.arena);

    for (int i = 0; i < NL; i++) free(large[i]);
    struct mallinfo2 m3 = mallinfo2();
    CHECK(m3.hblks == m1.hblks, "hblks %zu after freeing the large objects, want %zu", m3.hblks, m1.hblks);
    CHECK(m3.hblkhd == m1.hblkhd, "hblkhd %zu after freeing the large objects, want %zu", m3.hblkhd, m1.hblkhd);
    CHECK(m3.uordblks + m3.hblkhd + NL * 100 * KiB <= m2.uordblks + m2.hblkhd,
          "uordblks+hblkhd %zu -> %zu after freeing 1000 KiB", m2.uordblks + m2.hblkhd, m3.uordblks + m3.hblkhd);

    for (int i = 0; i < NS; i++) free(small[i]);
    struct mallinfo2 m4 = mallinfo2();
    struct mallinfo i4 = mallinfo();
    CHECK(m4.uordblks + NS * 1000 <= m3.uordblks, "uordblks %zu -> %zu after freeing 100 x 1000 B", m3.uordblks,
          m4.uordblks);
    CHECK(m4.uordblks == m0.uordblks, "uordblks %zu at the end, %zu at the start", m4.uordblks, m0.uordblks);
    CHECK(i4.hblks == i0.hblks && i4.uordblks == i0.uordblks, "mallinfo() not back: hblks %d/%d uordblks %d/%d",
          i4.hblks, i0.hblks, i4.uordblks, i0.uordblks);
}

/* ---- 10. malloc_stats, mallopt ------------------------------------------ */

static void test_malloc_stats(void) {
    fflush(stderr);
    FILE* tmp = tmpfile();
    CHECK(tmp != NULL, "tmpfile");
    if (tmp == NULL) return;
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = 0;
    fclose(tmp);
    CHECK(strstr(buf, "mallocs=") != NULL, "malloc_stats printed no \"mallocs=\": '%s'", buf);
    CHECK(strstr(buf, "goalloc: stats: mallocs=") != NULL, "malloc_stats printed no goalloc stats line");
}

static void test_mallopt(void) {
    CHECK(mallopt(M_ARENA_MAX, 1) == 1, "mallopt(M_ARENA_MAX, 1)");
    CHECK(mallopt(M_MMAP_THRESHOLD, 0) == 1, "mallopt(M_MMAP_THRESHOLD, 0)");
    CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 1, "mallopt(M_TRIM_THRESHOLD, -1)");
    CHECK(mallopt(12345, -7) == 1, "mallopt(12345, -7)");
    void* p = malloc(10);
    CHECK(p != NULL, "malloc after mallopt");
    free(p);
}

/* ---- 11. malloc_trim really releases memory ------------------------------ */

static void test_trim(void) {
    enum { N = 100 };
    const size_t block = 2 * MiB;
    static void* blocks[N];
    pl_stats s0, s1, s2;
    malloc_trim(0);
    pl_stats_get(&s0);
    size_t rss0 = pl_rss();
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(block);
        CHECK(blocks[i] != NULL, "malloc(2 MiB) #%d", i);
        if (blocks[i]) memset(blocks[i], i + 1, block); /* back every page */
    }
    size_t rss1 = pl_rss();
    CHECK(rss1 >= rss0 + 150 * MiB, "RSS %zu -> %zu MiB after touching 200 MiB", rss0 / MiB, rss1 / MiB);
    for (int i = 0; i < N; i++) free(blocks[i]);
    pl_stats_get(&s1);
    size_t rss2 = pl_rss();
    int r1 = malloc_trim(0);
    int r2 = malloc_trim(0);
    size_t rss3 = pl_rss();
    pl_stats_get(&s2);
    printf("malloc_trim: RSS %zu MiB -> allocated %zu -> freed %zu -> trimmed %zu; released %llu -> %llu MiB; "
           "malloc_trim returned %d then %d\n",
           rss0 / MiB, rss1 / MiB, rss2 / MiB, rss3 / MiB, (unsigned long long)(s1.bytes_released / MiB),
           (unsigned long long)(s2.bytes_released / MiB), r1, r2);
    CHECK(r1 == 1, "malloc_trim(0) after freeing 200 MiB returned %d, want 1", r1);
    CHECK(r2 == 0, "a second malloc_trim(0) with nothing to release returned %d, want 0", r2);
    CHECK(rss3 + 150 * MiB <= rss1, "RSS %zu MiB with 200 MiB allocated, %zu MiB after free + malloc_trim",
          rss1 / MiB, rss3 / MiB);
    /* bytes_released before the trim, not at the start: fresh pages count as
     * released until they are first used, so allocating lowers the figure. */
    CHECK(s2.bytes_released >= s1.bytes_released + 150 * MiB,
          "bytes_released %llu -> %llu across malloc_trim: it did not release 200 MiB",
          (unsigned long long)s1.bytes_released, (unsigned long long)s2.bytes_released);
    /* The released memory is reusable, and comes back zeroed for calloc. */
    char* again = (char*)calloc(1, 64 * MiB);
    CHECK(again != NULL && all_bytes(again, 64 * MiB, 0), "calloc(64 MiB) after malloc_trim");
    free(again);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    require_goalloc("entry_points");
    test_symbols();
    if (!p_libc_malloc || !p_libc_free || !p_libc_calloc || !p_libc_realloc || !p_libc_memalign ||
        !p_libc_valloc || !p_libc_pvalloc || !p_posix_memalign_alias || !p_cfree || !p_free_sized ||
        !p_free_aligned_sized) {
        printf("FAIL: some goalloc entry points are missing; not running the rest\n");
        checks_done();
        return 1;
    }
    test_malloc();
    test_aligned();
    test_absurd();
    test_free_errno();
    test_usable();
    test_calloc_reuse();
    test_aliases();
    test_mallinfo();
    test_malloc_stats();
    test_mallopt();
    test_trim();
    uint64_t found = pl_heap_validate();
    printf("heap validated: %llu live objects\n", (unsigned long long)found);
    return checks_done();
}
