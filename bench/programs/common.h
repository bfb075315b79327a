/*
 * common.h — shared helpers of the program suite (the .c files of bench/programs/).
 *
 * Every program of the suite is a plain executable that calls malloc/free/realloc
 * of whatever allocator the process has (the C library's, or one preloaded with
 * LD_PRELOAD); none links goalloc. Each one
 *   - takes its parameters as key=value arguments (arg_long), rejecting unknown keys;
 *   - stamps every object it allocates and verifies the stamp before freeing it
 *     (stamp/verify below), exiting with status 3 on the first mismatch;
 *   - ends with report(): the line `result: NAME ops=N ops_per_sec=X time_s=T
 *     peak_rss_kib=K` that scripts/bench_programs.py parses (T: the timed part,
 *     K: the process's VmHWM), and `malloc_from: PATH`, the shared object that
 *     defines the malloc the process uses (the preloaded library, or libc).
 *
 * Stamps. An object of n bytes gets 64-bit words at offsets 0, stride, 2*stride,
 * ... (those that end at least 8 bytes before the end) and one word at n - 8;
 * objects under 8 bytes get the low bytes of the tag. Word values are derived
 * from a tag that mixes the address, the size and a nonce the owner keeps apart
 * from the object (obj_tag). So a verify catches an object overwritten by another
 * object (overlap, or the same address handed out twice: the nonces differ), a
 * block that moved without its contents (realloc), and stray writes on the
 * sampled words. The stride is 64 (one word per cache line) for small objects
 * and 4096 (one per page) for the large ones.
 */
#ifndef GOALLOC_BENCH_PROGRAMS_COMMON_H
#define GOALLOC_BENCH_PROGRAMS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORRUPTION_EXIT 3

static inline void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

/* ---- pseudo-random numbers (per thread state, no allocation) -------------- */

static inline uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_seed(uint64_t seed) {
  rng_t r = {mix64(seed + 0x9e3779b97f4a7c15ull) | 1};
  return r;
}
static inline uint64_t rng_next(rng_t* r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dull;
}
/* Uniform in [0, n), n > 0. */
static inline uint64_t rng_below(rng_t* r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}
/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t* r, uint64_t lo, uint64_t hi) {
  return lo + rng_below(r, hi - lo + 1);
}
/* Uniform in [0, 1). */
static inline double rng_unit(rng_t* r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- stamps ----------------------------------------------------------------- */

#define STRIDE_SMALL 64
#define STRIDE_PAGE 4096

static inline uint64_t obj_tag(const void* p, size_t size, uint64_t nonce) {
  return mix64((uint64_t)(uintptr_t)p ^ mix64(size * 0x9e3779b97f4a7c15ull + nonce));
}
static inline uint64_t stamp_word(uint64_t tag, size_t off) {
  return tag ^ ((off + 1) * 0xd6e8feb86659fd93ull);
}

static inline void stamp(void* p, size_t n, uint64_t tag, size_t stride) {
  unsigned char* b = (unsigned char*)p;
  if (n < 8) {
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(tag >> (8 * i));
    return;
  }
  for (size_t off = 0; off + 16 <= n; off += stride) {
    uint64_t v = stamp_word(tag, off);
    memcpy(b + off, &v, 8);
  }
  uint64_t v = stamp_word(tag, n - 8);
  memcpy(b + n - 8, &v, 8);
}

/* 1 if the stamp of (n, tag) is intact. */
static inline int stamp_ok(const void* p, size_t n, uint64_t tag, size_t stride) {
  const unsigned char* b = (const unsigned char*)p;
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (b[i] != (unsigned char)(tag >> (8 * i))) return 0;
    return 1;
  }
  uint64_t v;
  for (size_t off = 0; off + 16 <= n; off += stride) {
    memcpy(&v, b + off, 8);
    if (v != stamp_word(tag, off)) return 0;
  }
  memcpy(&v, b + n - 8, 8);
  return v == stamp_word(tag, n - 8);
}

static inline void corrupt(const char* prog, const char* what, const void* p, size_t n) {
  fprintf(stderr, "%s: CORRUPTION: %s: object %p of %zu bytes does not hold its pattern\n",
          prog, what, p, n);
  fflush(stderr);
  exit(CORRUPTION_EXIT);
}

/* An owned object: where, how big, and the nonce of its tag (kept out of the object). */
typedef struct {
  void* p;
  uint32_t size;
  uint32_t nonce;
} obj_t;

/* malloc + stamp; dies on NULL. */
static inline obj_t obj_new(const char* prog, size_t size, rng_t* r) {
  obj_t o;
  o.p = malloc(size);
  if (o.p == NULL) die("%s: malloc(%zu) failed", prog, size);
  o.size = (uint32_t)size;
  o.nonce = (uint32_t)rng_next(r);
  stamp(o.p, size, obj_tag(o.p, size, o.nonce), STRIDE_SMALL);
  return o;
}
/* verify + free; exits on a broken stamp. No-op on an empty slot. */
static inline void obj_free(const char* prog, obj_t* o) {
  if (o->p == NULL) return;
  if (!stamp_ok(o->p, o->size, obj_tag(o->p, o->size, o->nonce), STRIDE_SMALL))
    corrupt(prog, "before free", o->p, o->size);
  free(o->p);
  o->p = NULL;
}

/* calloc or die (the programs' own bookkeeping arrays). */
static inline void* xcalloc(size_t n, size_t size) {
  void* p = calloc(n, size);
  if (p == NULL) die("calloc(%zu, %zu) failed", n, size);
  return p;
}

/* ---- threads, time ------------------------------------------------------------ */

static inline void xthread_create(pthread_t* t, void* (*fn)(void*), void* arg) {
  int e = pthread_create(t, NULL, fn, arg);
  if (e != 0) die("pthread_create: %s", strerror(e));
}
static inline void xthread_join(pthread_t t) {
  int e = pthread_join(t, NULL);
  if (e != 0) die("pthread_join: %s", strerror(e));
}

static inline double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- arguments: key=value ---------------------------------------------------- */

#define MAX_ARGS 32
static struct {
  int n;
  const char* key[MAX_ARGS];
  size_t keylen[MAX_ARGS];
  const char* val[MAX_ARGS];
  int used[MAX_ARGS];
  const char* usage;
} g_args;

static inline void args_init(int argc, char** argv, const char* usage) {
  g_args.usage = usage;
  for (int i = 1; i < argc; i++) {
    const char* eq = strchr(argv[i], '=');
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("usage: %s %s\n", argv[0], usage);
      exit(0);
    }
    if (eq == NULL || eq == argv[i] || g_args.n == MAX_ARGS) {
      fprintf(stderr, "usage: %s %s\n", argv[0], usage);
      exit(2);
    }
    g_args.key[g_args.n] = argv[i];
    g_args.keylen[g_args.n] = (size_t)(eq - argv[i]);
    g_args.val[g_args.n] = eq + 1;
    g_args.n++;
  }
}

/* The value of key=..., or def. Accepts k/m/g suffixes (powers of 1024). */
static inline long long arg_long(const char* key, long long def) {
  long long v = def;
  for (int i = 0; i < g_args.n; i++) {
    if (strlen(key) != g_args.keylen[i] || strncmp(key, g_args.key[i], g_args.keylen[i]) != 0)
      continue;
    g_args.used[i] = 1;
    char* end;
    errno = 0;
    v = strtoll(g_args.val[i], &end, 10);
    if (errno != 0 || end == g_args.val[i]) die("bad value for %s: '%s'", key, g_args.val[i]);
    if (*end == 'k' || *end == 'K') v <<= 10, end++;
    else if (*end == 'm' || *end == 'M') v <<= 20, end++;
    else if (*end == 'g' || *end == 'G') v <<= 30, end++;
    if (*end != '\0') die("bad value for %s: '%s'", key, g_args.val[i]);
  }
  return v;
}
static inline long long arg_range(const char* key, long long def, long long lo, long long hi) {
  long long v = arg_long(key, def);
  if (v < lo || v > hi) die("%s=%lld out of range [%lld, %lld]", key, v, lo, hi);
  return v;
}
/* Call after every arg_long: dies on keys no one asked for (typos). */
static inline void args_done(void) {
  for (int i = 0; i < g_args.n; i++)
    if (!g_args.used[i]) {
      fprintf(stderr, "error: unknown argument '%s'\nusage: %s\n", g_args.key[i], g_args.usage);
      exit(2);
    }
}

/* ---- the report ----------------------------------------------------------------- */

/* The shared object defining the malloc the process calls: the first definition
 * in the global lookup order, i.e. the LD_PRELOADed allocator if there is one. */
static inline const char* malloc_from(void) {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != NULL && dladdr(sym, &info) && info.dli_fname != NULL) return info.dli_fname;
  return "?";
}

/* The process's peak RSS in KiB (VmHWM), or -1. Unlike the ru_maxrss a parent
 * gets from wait4, it counts from exec: ru_maxrss also keeps the peak of the
 * address space the process was forked from (a Python runner's, for one). */
static inline long long peak_rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long long kib = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0) {
      kib = strtoll(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}

/* The last lines of every program. */
static inline void report(const char* name, uint64_t ops, double seconds) {
  printf("result: %s ops=%" PRIu64 " ops_per_sec=%.0f time_s=%.4f peak_rss_kib=%lld\n", name,
         ops, seconds > 0 ? (double)ops / seconds : 0.0, seconds, peak_rss_kib());
  printf("malloc_from: %s\n", malloc_from());
  fflush(stdout);
}

#endif
