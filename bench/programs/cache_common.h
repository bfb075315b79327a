/*
 * cache_common.h — the write loop of cache_scratch and cache_thrash.
 *
 * An object is filled byte by byte with its tag (fill), then every byte is
 * incremented `reps` times through a volatile pointer (hammer): real stores that
 * the compiler cannot merge, so an object that shares a cache line with another
 * thread's object makes the line bounce between the cores on every store (false
 * sharing). verify_hammered checks that every byte ended at fill + reps: an
 * object that overlaps another one, or was freed under its owner, fails.
 */
#ifndef GOALLOC_BENCH_PROGRAMS_CACHE_COMMON_H
#define GOALLOC_BENCH_PROGRAMS_CACHE_COMMON_H

#include "common.h"

static inline unsigned char fill_byte(uint64_t tag, size_t k) {
  return (unsigned char)(tag >> (8 * (k & 7))) ^ (unsigned char)(k >> 3);
}
static inline void fill(void* p, size_t n, uint64_t tag) {
  unsigned char* b = (unsigned char*)p;
  for (size_t k = 0; k < n; k++) b[k] = fill_byte(tag, k);
}
static inline int fill_ok(const void* p, size_t n, uint64_t tag, long long reps) {
  const unsigned char* b = (const unsigned char*)p;
  for (size_t k = 0; k < n; k++)
    if (b[k] != (unsigned char)(fill_byte(tag, k) + (unsigned char)reps)) return 0;
  return 1;
}
static inline void hammer(void* p, size_t n, long long reps) {
  volatile unsigned char* b = (volatile unsigned char*)p;
  for (long long r = 0; r < reps; r++)
    for (size_t k = 0; k < n; k++) b[k] = (unsigned char)(b[k] + 1);
}

/* One object's life in a worker: malloc, fill, hammer, verify, free. */
static inline void hammer_one(const char* prog, size_t size, long long reps, rng_t* r) {
  void* p = malloc(size);
  if (p == NULL) die("%s: malloc(%zu) failed", prog, size);
  uint64_t tag = obj_tag(p, size, rng_next(r));
  fill(p, size, tag);
  hammer(p, size, reps);
  if (!fill_ok(p, size, tag, reps)) corrupt(prog, "after the writes", p, size);
  free(p);
}

#endif
