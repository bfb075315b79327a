/*
 * preload_common.h — shared by the helper programs of tests/preload/.
 *
 * These programs are NOT linked with goalloc: they get it only through
 * LD_PRELOAD (or scripts/goalloc-run). Everything goalloc-specific they use
 * (ga_stats, ga_heap_validate, glibc aliases the headers no longer declare) is
 * looked up at run time with dlsym, so the programs also link and start on
 * plain glibc, where require_goalloc() then fails them with a clear message.
 *
 * CHECK(cond, fmt, ...) counts a check; a failed one prints a line
 *   FAIL <file>:<line>: <cond>: <message>
 * and checks_done() prints "N passed, M failed" and returns the exit status.
 */
#ifndef GOALLOC_PRELOAD_COMMON_H
#define GOALLOC_PRELOAD_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The layout of goalloc's ga_stats_t (include/goalloc/goalloc.h), repeated here
 * so that the helpers need nothing from the library at link time. */
typedef struct pl_stats {
    uint64_t bytes_in_use, bytes_mapped, bytes_released, bytes_reserved, bytes_metadata;
    uint64_t live_objects, mallocs, frees, spans_in_use, large_objects, heap_pages_free, arenas;
} pl_stats;

static unsigned long pl_passed, pl_failed;

static void pl_check(int ok, const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void pl_check(int ok, const char* file, int line, const char* cond, const char* fmt, ...) {
    if (ok) {
        __atomic_fetch_add(&pl_passed, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&pl_failed, 1, __ATOMIC_RELAXED);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One write per failure: readable even when threads fail at once. */
    char line_buf[1024];
    int n = snprintf(line_buf, sizeof line_buf, "FAIL %s:%d: %s: %s\n", file, line, cond, msg);
    fwrite(line_buf, 1, (size_t)(n < (int)sizeof line_buf ? n : (int)sizeof line_buf - 1), stdout);
    fflush(stdout);
}

#define CHECK(cond, ...) pl_check(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

static int checks_done(void) {
    printf("%lu passed, %lu failed\n", pl_passed, pl_failed);
    fflush(stdout);
    return pl_failed == 0 ? 0 : 1;
}

/* Keeps the compiler from reasoning about (or eliding) an allocation. */
static inline void pl_escape(const void* p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* A symbol looked up in the global scope (the preloaded library comes first). */
static void* pl_sym(const char* name) { return dlsym(RTLD_DEFAULT, name); }

/* Does the global definition of `name` live in libgoalloc? */
static int pl_sym_in_goalloc(const char* name) {
    void* p = pl_sym(name);
    Dl_info info;
    if (p == NULL || dladdr(p, &info) == 0 || info.dli_fname == NULL) return 0;
    return strstr(info.dli_fname, "libgoalloc") != NULL;
}

static void pl_stats_get(pl_stats* out) {
    static void (*fn)(pl_stats*);
    if (fn == NULL) *(void**)&fn = pl_sym("ga_stats");
    memset(out, 0, sizeof *out);
    if (fn != NULL) fn(out);
}

static uint64_t pl_heap_validate(void) {
    static uint64_t (*fn)(void);
    if (fn == NULL) *(void**)&fn = pl_sym("ga_heap_validate");
    return fn != NULL ? fn() : 0;
}

/* Exits with status 3 unless this process allocates with goalloc: Go's size
 * class for 100 bytes is 112 (glibc gives 104), and ga_malloc is visible. */
static void require_goalloc(const char* prog) {
    void* p = malloc(100);
    pl_escape(p);
    size_t u = malloc_usable_size(p);
    free(p);
    void* sym = pl_sym("ga_malloc");
    if (u != 112 || sym == NULL) {
        fprintf(stderr,
                "%s: not running on goalloc (malloc_usable_size(malloc(100)) = %zu, "
                "ga_malloc %s): run it with LD_PRELOAD=libgoalloc.so or scripts/goalloc-run\n",
                prog, u, sym ? "found" : "not found");
        exit(3);
    }
}

/* Resident set size in bytes, from /proc/self/statm. */
static size_t pl_rss(void) {
    FILE* f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f == NULL) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* A small deterministic generator (xorshift64*) for sizes and choices. */
static inline uint64_t pl_rand(uint64_t* s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#ifdef __cplusplus
}
#endif

#endif /* GOALLOC_PRELOAD_COMMON_H */
