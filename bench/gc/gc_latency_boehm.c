/*
 * gc_latency_boehm — stop-the-world pauses while mutators run over a large live
 * heap, on Boehm GC: the same program as gc_latency.cpp (goalloc) and
 * gc_latency.go.
 *
 *   gc_latency_boehm [LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4]
 *                    [threads=1] [seed=1] [verify=1]
 *
 * The table is one GC_MALLOC'd array (held by a global: Boehm scans the data
 * segment), the lists are GC_MALLOC(64) objects (Boehm rounds each up to 80
 * bytes: it adds one byte so that a pointer just past the end still counts).
 * Mutator threads are created through GC_pthread_create (GC_THREADS). See
 * gc_latency.cpp for what it does and prints, gcb_boehm.h for the pauses; the
 * collector's CPU share while marking is not measured here (Boehm marks with
 * the world stopped: its share while marking is all of it).
 */
#include "gcb_boehm.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct obj {
  struct obj* next;
  uint64_t stamp;
  uint64_t pad[6];
} obj_t;
_Static_assert(sizeof(obj_t) == 64, "64-byte objects");

static int chain;
static int verify;
static obj_t** table;
static atomic_bool stop;

static uint64_t stamp_of(uint64_t entry, int k) { return gcb_mix64(entry * 8 + (uint64_t)k) | 1; }

static obj_t* make_list(uint64_t entry) {
  obj_t* head = NULL;
  for (int k = chain - 1; k >= 0; k--) {
    obj_t* o = (obj_t*)GC_MALLOC(sizeof(obj_t));
    if (o == NULL) gcb_die("GC_MALLOC failed");
    o->next = head;
    o->stamp = stamp_of(entry, k);
    head = o;
  }
  return head;
}

static void check_list(const obj_t* o, uint64_t entry) {
  for (int k = 0; k < chain; k++) {
    if (o == NULL || o->stamp != stamp_of(entry, k)) {
      fprintf(stderr, "gc_latency: CORRUPTION: entry %" PRIu64 ", object %d of its list: %s\n", entry, k,
              o == NULL ? "missing" : "wrong stamp");
      exit(3);
    }
    o = o->next;
  }
  if (o != NULL) {
    fprintf(stderr, "gc_latency: CORRUPTION: entry %" PRIu64 ": list longer than %d\n", entry, chain);
    exit(3);
  }
}

typedef struct {
  int id;
  uint64_t lo, hi, quota, seed, ops;
  int64_t deadline;
  gcb_gaps_t gaps;
  pthread_t thread;
} worker_t;

static void run(worker_t* w) {
  uint64_t rng = gcb_rng_seed(w->seed);
  uint64_t n = w->hi - w->lo;
  int64_t last = gcb_now_ns();
  for (uint64_t op = 1;; op++) {
    uint64_t i = w->lo + gcb_rng_below(&rng, n);
    obj_t* fresh = make_list(i);
    if ((op & 1023) == 0) {
      if (verify) check_list(table[i], i);
      table[i] = fresh;
      int64_t now = gcb_now_ns();
      gcb_gaps_add(&w->gaps, now - last);
      last = now;
      if (w->id == 0 && w->quota == 0 && now >= w->deadline) atomic_store_explicit(&stop, 1, memory_order_relaxed);
      if (w->quota != 0 ? op >= w->quota : atomic_load_explicit(&stop, memory_order_relaxed)) {
        w->ops = op;
        break;
      }
    } else {
      table[i] = fresh;
      if (w->quota != 0 && op >= w->quota) {
        w->ops = op;
        break;
      }
    }
  }
}

static void* thread_main(void* arg) {
  run((worker_t*)arg);
  return NULL;
}

int main(int argc, char** argv) {
  GCB_BOEHM_INIT();
  static const char* const positional[] = {"live_mb", "seconds", NULL};
  gcb_args_init(argc, argv, positional,
                "[LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4] [threads=1] [seed=1] [verify=1]");
  const long long live_mb = gcb_arg("live_mb", 1024, 1, 1 << 20);
  const long long seconds = gcb_arg("seconds", 10, 0, 1 << 20);
  const long long total_ops = gcb_arg("ops", 0, 0, 1ll << 50);
  chain = (int)gcb_arg("chain", 4, 1, 64);
  const int threads = (int)gcb_arg("threads", 1, 1, 64);
  const long long seed = gcb_arg("seed", 1, 0, 1ll << 62);
  verify = gcb_arg("verify", 1, 0, 1) != 0;
  gcb_args_done();

  const uint64_t entries = ((uint64_t)live_mb << 20) / ((uint64_t)chain * 64);
  if (entries < (uint64_t)threads) gcb_die("live_mb too small for %d threads", threads);

  /* ---- build the live heap */
  int64_t t_build = gcb_now_ns();
  table = (obj_t**)GC_MALLOC(entries * sizeof(obj_t*));
  if (table == NULL) gcb_die("GC_MALLOC of the table failed");
  for (uint64_t i = 0; i < entries; i++) table[i] = make_list(i);
  double build_s = (double)(gcb_now_ns() - t_build) / 1e9;
  uint64_t cycles0 = gcb_boehm.n;
  int64_t pause0 = gcb_boehm.total;

  /* ---- mutate */
  worker_t* ws = (worker_t*)calloc((size_t)threads, sizeof(worker_t));
  if (ws == NULL) gcb_die("calloc failed");
  for (int t = 0; t < threads; t++) {
    worker_t* w = &ws[t];
    w->id = t;
    w->lo = entries * (uint64_t)t / (uint64_t)threads;
    w->hi = entries * (uint64_t)(t + 1) / (uint64_t)threads;
    w->quota = total_ops > 0 ? ((uint64_t)total_ops + (uint64_t)t) / (uint64_t)threads : 0;
    if (total_ops > 0 && w->quota == 0) w->quota = 1;
    w->seed = (uint64_t)seed * 1000003u + (uint64_t)t;
  }
  int64_t t0 = gcb_now_ns();
  ws[0].deadline = t0 + seconds * 1000000000ll;
  int64_t proc_start = gcb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
  for (int t = 1; t < threads; t++)
    if (pthread_create(&ws[t].thread, NULL, thread_main, &ws[t]) != 0) gcb_die("pthread_create failed");
  run(&ws[0]);
  for (int t = 1; t < threads; t++) pthread_join(ws[t].thread, NULL);
  int64_t t1 = gcb_now_ns();
  int64_t proc_cpu = gcb_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - proc_start;
  uint64_t steady_cycles = gcb_boehm.n - cycles0;
  int64_t steady_pause = gcb_boehm.total - pause0;

  /* ---- check every list */
  if (verify)
    for (uint64_t i = 0; i < entries; i++) check_list(table[i], i);

  gcb_gaps_t gaps;
  memset(&gaps, 0, sizeof gaps);
  uint64_t ops = 0;
  for (int t = 0; t < threads; t++) {
    gcb_gaps_merge(&gaps, &ws[t].gaps);
    ops += ws[t].ops;
  }
  double secs = (double)(t1 - t0) / 1e9;
  double rate = secs > 0 ? (double)ops / secs : 0;
  int64_t p50 = gcb_gaps_quantile(&gaps, 0.5), p99 = gcb_gaps_quantile(&gaps, 0.99),
          p999 = gcb_gaps_quantile(&gaps, 0.999);
  printf("result: gc_latency ops=%" PRIu64 " ops_per_sec=%.0f time_s=%.3f live_mb=%lld entries=%" PRIu64
         " chain=%d threads=%d build_s=%.3f max_gap_us=%.1f p50_gap_us=%.1f p99_gap_us=%.1f"
         " p999_gap_us=%.1f gaps_over_1ms=%" PRIu64 "\n",
         ops, rate, secs, live_mb, entries, chain, threads, build_s, gaps.max / 1e3, p50 / 1e3, p99 / 1e3,
         p999 / 1e3, gaps.over_1ms);
  fflush(stdout);

  char extra[1024];
  snprintf(extra, sizeof extra,
           "ops=%" PRIu64 " ops_per_sec=%.0f run_s=%.3f build_s=%.3f steady_cycles=%" PRIu64
           " steady_pause_total_ns=%" PRId64 " max_gap_ns=%" PRId64 " p50_gap_ns=%" PRId64 " p99_gap_ns=%" PRId64
           " p999_gap_ns=%" PRId64 " gaps_over_100us=%" PRIu64 " gaps_over_1ms=%" PRIu64 " gaps=%" PRIu64
           " steady_cpu_s=%.3f",
           ops, rate, secs, build_s, steady_cycles, steady_pause, gaps.max, p50, p99, p999, gaps.over_100us,
           gaps.over_1ms, gaps.n, (double)proc_cpu / 1e9);
  gcb_boehm_report(extra);
  free(ws);
  return 0;
}
