/*
 * smoke.c [OBJECTS [LIVE_MIB [close-stderr]]] — a small, ordinary program for the
 * configuration tests (GOALLOC_STATS, GOALLOC_VERBOSE, scripts/goalloc-run):
 * allocates OBJECTS small objects (default 1000), frees all but every tenth,
 * and keeps LIVE_MIB MiB of large objects (default 0) live until exit. With
 * close-stderr it closes stdout and stderr in an atexit handler, as GNU
 * coreutils programs do (close_stdout), before any library destructor runs.
 * Prints to stdout:
 *   goalloc: yes|no          (whether this process allocates with goalloc)
 *   LD_PRELOAD=<value>
 *   checksum <n>
 * and exits 0 (it does not judge; the driver does).
 */
#include "preload_common.h"

static void close_std_streams(void) {
    fclose(stdout);
    fclose(stderr);
}

int main(int argc, char** argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long live_mib = argc > 2 ? atol(argv[2]) : 0;
    if (argc > 3 && strcmp(argv[3], "close-stderr") == 0) atexit(close_std_streams);
    void* p = malloc(100);
    pl_escape(p);
    int on_goalloc = malloc_usable_size(p) == 112 && pl_sym("ga_malloc") != NULL;
    free(p);
    printf("goalloc: %s\n", on_goalloc ? "yes" : "no");
    const char* pre = getenv("LD_PRELOAD");
    printf("LD_PRELOAD=%s\n", pre ? pre : "");
    void** objs = (void**)calloc((size_t)n + 1, sizeof(void*));
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        size_t sz = 8 + (size_t)(i * 37 % 3000);
        objs[i] = malloc(sz);
        memset(objs[i], (int)(i & 0xff), sz);
        sum += ((unsigned char*)objs[i])[sz - 1];
    }
    for (long i = 0; i < n; i++)
        if (i % 10 != 0) free(objs[i]);
    for (long i = 0; i < live_mib; i++) {
        char* big = (char*)malloc(1 << 20); /* kept until exit */
        big[0] = 1;
        pl_escape(big);
    }
    printf("checksum %lu\n", sum);
    return 0;
}
