// cpu_pingpong — how far apart the machine's first two CPUs are: the round
// trip of one cache line between two threads pinned to them, in nanoseconds.
//
//   cpu_pingpong [rounds=20000]
//
// prints `cpu_round_trip_ns=X cpus=A,B` (X = 0 and a reason on stderr if the
// process may run on fewer than two CPUs). scripts/bench_gc.py runs it before
// each run, so that gc.md can say where the host had put the CPUs: on this
// virtual machine the same two vCPUs are ~55-85 ns apart at some times,
// ~100-300 ns at others and ~400-700 ns at others again, from minute to
// minute, and the collector's two threads (the mutator and the background
// mark worker) share cache lines (bench/results/NOTES.md, twelfth pass).
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Alignas(64) _Atomic long flag;
static long rounds = 20000;
static int cpu_a = -1, cpu_b = -1;

static int pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void* pong(void* arg) {
    (void)arg;
    if (pin(cpu_b) != 0) return (void*)1;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1) {
        }
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
        const char* v = strncmp(argv[i], "rounds=", 7) == 0 ? argv[i] + 7 : argv[i];
        char* end;
        long n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1 || n > 100000000) {
            fprintf(stderr, "usage: cpu_pingpong [rounds=20000]\n");
            return 2;
        }
        rounds = n;
    }
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        perror("cpu_pingpong: sched_getaffinity");
        return 1;
    }
    for (int c = 0; c < CPU_SETSIZE && cpu_b < 0; c++)
        if (CPU_ISSET(c, &allowed)) {
            if (cpu_a < 0) cpu_a = c;
            else cpu_b = c;
        }
    if (cpu_b < 0) {
        fprintf(stderr, "cpu_pingpong: fewer than two CPUs allowed\n");
        printf("cpu_round_trip_ns=0 cpus=%d\n", cpu_a);
        return 0;
    }
    if (pin(cpu_a) != 0) {
        fprintf(stderr, "cpu_pingpong: cannot pin to CPU %d\n", cpu_a);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, pong, NULL) != 0) {
        fprintf(stderr, "cpu_pingpong: pthread_create failed\n");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    void* r;
    pthread_join(t, &r);
    if (r != NULL) {
        fprintf(stderr, "cpu_pingpong: cannot pin to CPU %d\n", cpu_b);
        return 1;
    }
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)rounds;
    printf("cpu_round_trip_ns=%.1f cpus=%d,%d\n", ns, cpu_a, cpu_b);
    return 0;
}
