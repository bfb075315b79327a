/*
 * callgrind_pair — N malloc+free pairs of pseudo-random small sizes, for counting
 * instructions per pair under callgrind (scripts/callgrind_pair.sh).
 *
 *   callgrind_pair MODE [N [WARMUP]]     N default 1000000, WARMUP default 100000
 *   MODE  goalloc  ga_malloc/ga_free
 *         glibc    malloc/free (whatever malloc resolves to: LD_PRELOAD jemalloc...)
 *         none     the same loop without allocating: the loop's own cost
 *
 * Sizes (8..512 bytes, xorshift64) are computed into an mmap'd array before any
 * loop runs, so neither the RNG nor the array touches the allocators. The measured
 * loop is measured_loop_MODE (noinline); collect it with
 *   valgrind --tool=callgrind --toggle-collect='measured_loop*' ./callgrind_pair ...
 * The warm-up runs the same loop under another name (warmup_MODE). The last line
 * printed names the library whose malloc the glibc mode called (malloc_from=).
 */
#define _GNU_SOURCE
#include <goalloc/goalloc.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* noipa (GCC): also no identical-code folding of the measured and warm-up loops,
 * which would give them one symbol. */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noipa))
#endif

/* Makes p escape so the compiler can neither drop nor merge the allocation. */
static inline void sink(void* p) { __asm__ volatile("" : : "r"(p) : "memory"); }

#define PAIR_LOOP(name, alloc_fn, free_fn)                        \
  NOINLINE void name(const uint16_t* sizes, size_t n) {           \
    for (size_t i = 0; i < n; i++) {                              \
      void* p = alloc_fn(sizes[i]);                               \
      sink(p);                                                    \
      free_fn(p);                                                 \
    }                                                             \
  }

static void* no_alloc(size_t size) { return (void*)(uintptr_t)size; }
static void no_free(void* p) { (void)p; }

PAIR_LOOP(measured_loop_goalloc, ga_malloc, ga_free)
PAIR_LOOP(measured_loop_glibc, malloc, free)
PAIR_LOOP(measured_loop_none, no_alloc, no_free)
PAIR_LOOP(warmup_goalloc, ga_malloc, ga_free)
PAIR_LOOP(warmup_glibc, malloc, free)
PAIR_LOOP(warmup_none, no_alloc, no_free)

static size_t parse_count(const char* s, const char* what) {
  char* end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > (1ull << 32)) {
    fprintf(stderr, "callgrind_pair: bad %s '%s'\n", what, s);
    exit(2);
  }
  return (size_t)v;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s goalloc|glibc|none [N [WARMUP]]\n", argv[0]);
    return 2;
  }
  const char* mode = argv[1];
  size_t n = argc > 2 ? parse_count(argv[2], "N") : 1000000;
  size_t warmup = argc > 3 ? parse_count(argv[3], "WARMUP") : 100000;

  void (*warm)(const uint16_t*, size_t);
  void (*measured)(const uint16_t*, size_t);
  if (strcmp(mode, "goalloc") == 0) {
    warm = warmup_goalloc, measured = measured_loop_goalloc;
  } else if (strcmp(mode, "glibc") == 0) {
    warm = warmup_glibc, measured = measured_loop_glibc;
  } else if (strcmp(mode, "none") == 0) {
    warm = warmup_none, measured = measured_loop_none;
  } else {
    fprintf(stderr, "callgrind_pair: unknown mode '%s'\n", mode);
    return 2;
  }

  size_t total = warmup + n;
  size_t bytes = (total ? total : 1) * sizeof(uint16_t);
  uint16_t* sizes = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (sizes == MAP_FAILED) {
    perror("callgrind_pair: mmap");
    return 1;
  }
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < total; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sizes[i] = (uint16_t)(8 + x % 505); /* 8..512 */
  }

  warm(sizes, warmup);
  measured(sizes + warmup, n);

  /* Which library's malloc ran, so that a run under LD_PRELOAD can be checked. */
  Dl_info info;
  void* (*malloc_fn)(size_t) = malloc;
  const char* from = dladdr((void*)malloc_fn, &info) && info.dli_fname ? info.dli_fname : "?";
  printf("callgrind_pair: mode=%s pairs=%zu warmup=%zu malloc_from=%s\n", mode, n, warmup, from);
  munmap(sizes, bytes);
  return 0;
}
