/*
 * gcb_common.h — helpers shared by the C and C++ programs of bench/gc/ (the
 * goalloc and Boehm GC flavours; the Go flavours have their own copy in Go).
 *
 *   - parameters: key=value arguments, or bare values taken in the order of the
 *     program's positional keys (`binary_trees 21` == `binary_trees depth=21`);
 *     k/m/g suffixes; unknown keys and malformed values are errors (exit 2);
 *   - clocks (CLOCK_MONOTONIC, process and thread CPU time) in nanoseconds;
 *   - the process's peak RSS (VmHWM of /proc/self/status), which every program
 *     prints as vmhwm_kib= in its `gcstats` line on stderr (the runner's wait4
 *     ru_maxrss also counts the memory of the process it was forked from);
 *   - a small PRNG (splitmix64 + xorshift64*).
 *
 * Every program ends by printing to STDERR one line that scripts/bench_gc.py parses:
 *   gcstats cycles=N pause_total_ns=N pause_max_ns=N gc_cpu_fraction=F vmhwm_kib=K [more key=value]
 * Standard output is the program's own (for binary_trees and gcbench: identical
 * in every flavour, the runner compares it).
 */
#ifndef GOALLOC_BENCH_GC_COMMON_H
#define GOALLOC_BENCH_GC_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void gcb_die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

/* ---- parameters ------------------------------------------------------------ */

#define GCB_MAX_ARGS 16
static struct {
  const char* prog;
  const char* usage;
  int n;
  const char* key[GCB_MAX_ARGS];
  size_t key_len[GCB_MAX_ARGS];
  const char* val[GCB_MAX_ARGS];
  int used[GCB_MAX_ARGS];
} gcb_args;

/* positional: NULL-terminated list of the keys that bare values stand for, in order. */
static inline void gcb_args_init(int argc, char** argv, const char* const* positional,
                                 const char* usage) {
  gcb_args.prog = argv[0];
  gcb_args.usage = usage;
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      printf("usage: %s %s\n", argv[0], usage);
      exit(0);
    }
    if (gcb_args.n == GCB_MAX_ARGS) gcb_die("too many arguments");
    const char* eq = strchr(a, '=');
    int k = gcb_args.n++;
    if (eq != NULL) {
      gcb_args.key[k] = a;
      gcb_args.key_len[k] = (size_t)(eq - a);
      gcb_args.val[k] = eq + 1;
    } else {
      if (positional == NULL || positional[npos] == NULL)
        gcb_die("unexpected argument '%s' (usage: %s %s)", a, argv[0], usage);
      gcb_args.key[k] = positional[npos];
      gcb_args.key_len[k] = strlen(positional[npos]);
      gcb_args.val[k] = a;
      npos++;
    }
  }
}

/* Parses "123", "64k", "2m", "1g" (powers of 1024). */
static inline long long gcb_parse(const char* key, const char* s) {
  char* end;
  errno = 0;
  long long v = strtoll(s, &end, 0);
  if (end == s || errno != 0) gcb_die("bad value '%s' for %s", s, key);
  switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
  }
  if (*end != '\0') gcb_die("bad value '%s' for %s", s, key);
  return v;
}

static inline long long gcb_arg(const char* key, long long def, long long lo, long long hi) {
  long long v = def;
  for (int i = 0; i < gcb_args.n; i++) {
    if (gcb_args.key_len[i] == strlen(key) && strncmp(gcb_args.key[i], key, gcb_args.key_len[i]) == 0) {
      v = gcb_parse(key, gcb_args.val[i]);
      gcb_args.used[i] = 1;
    }
  }
  if (v < lo || v > hi) gcb_die("%s=%lld out of range [%lld, %lld]", key, v, lo, hi);
  return v;
}

/* A string parameter: its value as given, or def. */
static inline const char* gcb_arg_str(const char* key, const char* def) {
  const char* v = def;
  for (int i = 0; i < gcb_args.n; i++) {
    if (gcb_args.key_len[i] == strlen(key) && strncmp(gcb_args.key[i], key, gcb_args.key_len[i]) == 0) {
      v = gcb_args.val[i];
      gcb_args.used[i] = 1;
    }
  }
  return v;
}

/* Call after every gcb_arg: dies on keys no one asked for (typos). */
static inline void gcb_args_done(void) {
  for (int i = 0; i < gcb_args.n; i++)
    if (!gcb_args.used[i])
      gcb_die("unknown parameter '%.*s' (usage: %s %s)", (int)gcb_args.key_len[i], gcb_args.key[i],
              gcb_args.prog, gcb_args.usage);
}

/* ---- clocks and memory ------------------------------------------------------ */

static inline int64_t gcb_clock_ns(clockid_t c) {
  struct timespec ts = {0, 0};
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t gcb_now_ns(void) { return gcb_clock_ns(CLOCK_MONOTONIC); }

/* VmHWM of this process in KiB, -1 if unknown. */
static inline long long gcb_vmhwm_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  char line[256];
  long long v = -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "VmHWM:", 6) == 0) v = strtoll(line + 6, NULL, 10);
  fclose(f);
  return v;
}

/* ---- pseudo-random numbers --------------------------------------------------- */

static inline uint64_t gcb_mix64(uint64_t x) { /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}
static inline uint64_t gcb_rng_seed(uint64_t seed) { return gcb_mix64(seed + 0x9e3779b97f4a7c15ull) | 1; }
static inline uint64_t gcb_rng_next(uint64_t* s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}
/* Uniform in [0, n), n > 0. */
static inline uint64_t gcb_rng_below(uint64_t* s, uint64_t n) {
  return (uint64_t)(((unsigned __int128)gcb_rng_next(s) * n) >> 64);
}

/* ---- the mutator's hiccups (gc_latency) ----------------------------------------
 * Gaps between consecutive samples of the clock (taken every 1024 operations) in
 * a log2 histogram: bucket b counts gaps in [2^b, 2^(b+1)) ns. */
typedef struct {
  uint64_t count[64];
  uint64_t n;
  int64_t max;
  uint64_t over_100us, over_1ms; /* gaps of at least 100 us, 1 ms */
} gcb_gaps_t;

static inline void gcb_gaps_add(gcb_gaps_t* g, int64_t gap) {
  if (gap < 1) gap = 1;
  g->count[63 - __builtin_clzll((unsigned long long)gap)]++;
  g->n++;
  if (gap > g->max) g->max = gap;
  g->over_100us += gap >= 100000;
  g->over_1ms += gap >= 1000000;
}
static inline void gcb_gaps_merge(gcb_gaps_t* into, const gcb_gaps_t* g) {
  for (int b = 0; b < 64; b++) into->count[b] += g->count[b];
  into->n += g->n;
  if (g->max > into->max) into->max = g->max;
  into->over_100us += g->over_100us;
  into->over_1ms += g->over_1ms;
}
/* Upper bound of the bucket holding quantile q (0 < q <= 1), at most the max, in ns. */
static inline int64_t gcb_gaps_quantile(const gcb_gaps_t* g, double q) {
  uint64_t want = (uint64_t)(q * (double)g->n + 0.5), seen = 0;
  if (want == 0) want = 1;
  for (int b = 0; b < 64; b++) {
    seen += g->count[b];
    if (seen >= want) {
      int64_t up = b >= 62 ? INT64_MAX : ((int64_t)1 << (b + 1));
      return up < g->max ? up : g->max;
    }
  }
  return g->max;
}
#endif
