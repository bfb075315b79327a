/* random_access — what one random memory access costs on this machine, with
 * 4 KiB pages and with transparent huge pages: the probe behind goalloc's
 * huge-page policy for the collected heap (gc/README.md, "Fresh memory").
 *
 *   random_access [MIB [DISTANCE [ACCESSES]]]   defaults 1024 8 4000000
 *
 * Maps MIB MiB twice (one range left to 4 KiB pages with MADV_NOHUGEPAGE,
 * one asking for huge pages with MADV_HUGEPAGE), touches every page, then
 * loads one word from each of ACCESSES random cache lines, prefetching the
 * line DISTANCE accesses ahead (as a marker's FIFO does), and prints per page
 * size the nanoseconds per access, the share of the range the kernel backed
 * with huge pages (AnonHugePages of /proc/self/smaps), and what the first
 * touch of each 2 MiB cost (the page faults: median and longest), and, for
 * the 4 KiB range, what collapsing it into huge pages 2 MiB at a time costs
 * (MADV_COLLAPSE: median, longest and total). Loads are
 * independent: the core may overlap as many as it can track. Median of
 * five passes. Written by scripts/random_access.sh into
 * bench/results/random_access.md. Plain C, no goalloc code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static long huge_kib(uintptr_t lo, uintptr_t hi) {
    FILE* f = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;
    long kib = 0;
    if (f == NULL) return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long a, b;
        long k;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = a < hi && b > lo;
        else if (inside && sscanf(line, "AnonHugePages: %ld kB", &k) == 1)
            kib += k;
    }
    fclose(f);
    return kib;
}

static int cmp(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    size_t dist = argc > 2 ? strtoul(argv[2], NULL, 10) : 8;
    size_t m = argc > 3 ? strtoul(argv[3], NULL, 10) : 4000000;
    size_t n = mib << 20, huge = (size_t)2 << 20;
    if (mib == 0 || m == 0) {
        fprintf(stderr, "usage: random_access [MIB [DISTANCE [ACCESSES]]]\n");
        return 2;
    }
    uintptr_t* idx = malloc(m * sizeof *idx);
    if (idx == NULL) return 1;
    printf("range %zu MiB, %zu random loads a pass, prefetch distance %zu\n", mib, m, dist);
    for (int pass = 0; pass < 2; pass++) {
        int want_huge = pass == 1;
        char* raw = mmap(NULL, n + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        char* mem = (char*)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
        madvise(mem, n, want_huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        /* First touch, timed per 2 MiB: what faulting the range in costs (a
         * huge page is zeroed whole by one fault; 4 KiB pages take 512). */
        double* ft = malloc((n / huge) * sizeof *ft);
        if (ft == NULL) return 1;
        for (size_t h = 0; h < n / huge; h++) {
            double f0 = now_ns();
            for (size_t o = h * huge; o < (h + 1) * huge; o += 4096) mem[o] = 1;
            ft[h] = (now_ns() - f0) / 1e3;
        }
        qsort(ft, n / huge, sizeof ft[0], cmp);
        double fmed = ft[n / huge / 2], fmax = ft[n / huge - 1];
        free(ft);
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < m; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            idx[i] = (uintptr_t)(mem + (x % (n / 64)) * 64);
        }
        double t[5];
        uint64_t sum = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = now_ns();
            for (size_t i = 0; i < m; i++) {
                if (i + dist < m) __builtin_prefetch((const void*)idx[i + dist]);
                sum += *(volatile uint64_t*)idx[i];
            }
            t[r] = (now_ns() - t0) / (double)m;
        }
        qsort(t, 5, sizeof t[0], cmp);
        long hk = huge_kib((uintptr_t)mem, (uintptr_t)mem + n);
        printf("%-10s %6.1f ns/access (min %.1f, max %.1f), %ld%% in huge pages (checksum %llu); "
               "first touch of 2 MiB: %.0f us median, %.0f us max",
               want_huge ? "huge" : "4k", t[2], t[0], t[4], hk < 0 ? -1 : (long)(hk * 100 / (long)(n >> 10)),
               (unsigned long long)sum, fmed, fmax);
        if (!want_huge) {
            /* What collapsing the 4 KiB range into huge pages costs, 2 MiB at
             * a time (MADV_COLLAPSE, Linux 6.1+), as goalloc does with the
             * arenas it mapped before it asked for huge pages. */
            double* ct = malloc((n / huge) * sizeof *ct);
            if (ct == NULL) return 1;
            madvise(mem, n, MADV_HUGEPAGE);
            int failed = 0, unsupported = 0;
            double c0 = now_ns();
            for (size_t h = 0; h < n / huge && !unsupported; h++) {
                double f0 = now_ns();
                if (madvise(mem + h * huge, huge, 25 /* MADV_COLLAPSE */) != 0) {
                    unsupported = errno == EINVAL;
                    failed++;
                }
                ct[h] = (now_ns() - f0) / 1e3;
            }
            double total = (now_ns() - c0) / 1e6;
            if (unsupported) {
                printf("; collapse: unsupported");
            } else {
                qsort(ct, n / huge, sizeof ct[0], cmp);
                printf("; collapse of 2 MiB: %.0f us median, %.0f us max, %.0f ms in all (%d failed)", ct[n / huge / 2],
                       ct[n / huge - 1], total, failed);
            }
            free(ct);
        }
        printf("\n");
        munmap(raw, n + huge);
    }
    free(idx);
    return 0;
}
