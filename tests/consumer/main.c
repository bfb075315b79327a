/* A C program using an installed goalloc through <goalloc/goalloc.h>; prints OK. */
#include <goalloc/goalloc.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "consumer: %s:%d: check failed: %s\n", __FILE__, \
              __LINE__, #cond);                                          \
      failures++;                                                        \
    }                                                                    \
  } while (0)

int main(void) {
  void* p = ga_malloc(100);
  CHECK(p != NULL);
  CHECK(ga_usable_size(p) == 112); /* Go's size class for 100 bytes */
  memset(p, 0xab, 100);
  ga_free(p);

  void* objs[64];
  for (int i = 0; i < 64; i++) {
    objs[i] = ga_malloc((size_t)(i + 1) * 24);
    CHECK(objs[i] != NULL);
    if (objs[i] != NULL) memset(objs[i], i, (size_t)(i + 1) * 24);
  }
  for (int i = 0; i < 64; i++) ga_free(objs[i]);

  unsigned char* z = ga_calloc(16, 64);
  CHECK(z != NULL);
  for (int i = 0; z != NULL && i < 16 * 64; i++) CHECK(z[i] == 0);
  z = ga_realloc(z, 100000);
  CHECK(z != NULL);
  CHECK(ga_usable_size(z) >= 100000);
  ga_free(z);

  void* a = ga_aligned_alloc(4096, 100);
  CHECK(a != NULL && ((uintptr_t)a & 4095) == 0);
  ga_free(a);

  ga_stats_t st;
  ga_stats(&st);
  CHECK(st.mallocs >= 67);

  if (failures != 0) return 1;
  puts("OK");
  return 0;
}
