/*
 * gcb_boehm.h — pause accounting for the Boehm GC flavours of bench/gc/.
 *
 * Boehm GC as Debian builds it (threads, parallel marking; not incremental
 * unless asked) collects with the world stopped: the thread that triggers a
 * collection runs it from start to end, and every other mutator is stopped
 * while it marks, so a collection's duration (GC_EVENT_START to GC_EVENT_END, timed here with
 * CLOCK_MONOTONIC through GC_set_on_collection_event) is the mutator's pause.
 * The stop-the-world proper (GC_EVENT_PRE_STOP_WORLD to
 * GC_EVENT_POST_START_WORLD) is recorded as well (stw_max_ns=): it leaves out
 * the collector's set-up and the start of the sweep (reclaim), which the
 * collecting mutator still waits for.
 *
 * gc_cpu_fraction: Boehm keeps no such figure. Printed is the share of the
 * wall time spent in collections (pause_total / wall): while one runs, the
 * parallel markers keep every CPU busy, so it approximates collector CPU time /
 * available CPU time as Go's GCCPUFraction does. Lazy sweeping, done by the
 * allocating threads outside collections, is not counted.
 */
#ifndef GOALLOC_BENCH_GC_BOEHM_H
#define GOALLOC_BENCH_GC_BOEHM_H

#ifndef GC_THREADS
#define GC_THREADS 1 /* GC_start_mark_threads; pthread_create goes through the collector */
#endif
#include <gc.h>
#include <inttypes.h>

#include "gcb_common.h"

static struct {
  int64_t t0; /* process start (GCB_BOEHM_INIT) */
  int64_t start, stw_start;
  int64_t total, max, stw_total, stw_max;
  uint64_t n, stw_n;
} gcb_boehm;

static void gcb_boehm_event(GC_EventType e) {
  int64_t t;
  switch (e) {
    case GC_EVENT_START:
      gcb_boehm.start = gcb_now_ns();
      break;
    case GC_EVENT_END:
      t = gcb_now_ns() - gcb_boehm.start;
      gcb_boehm.total += t;
      if (t > gcb_boehm.max) gcb_boehm.max = t;
      gcb_boehm.n++;
      break;
    case GC_EVENT_PRE_STOP_WORLD:
      gcb_boehm.stw_start = gcb_now_ns();
      break;
    case GC_EVENT_POST_START_WORLD:
      t = gcb_now_ns() - gcb_boehm.stw_start;
      gcb_boehm.stw_total += t;
      if (t > gcb_boehm.stw_max) gcb_boehm.stw_max = t;
      gcb_boehm.stw_n++;
      break;
    default:
      break;
  }
}

/* Call first thing in main (instead of GC_INIT). The callback goes in first:
 * GC_INIT collects once (Boehm's "precollect"), and that collection counts.
 * Boehm starts its parallel markers only when the program creates its first
 * thread; GC_start_mark_threads starts them now, so that single-threaded
 * programs mark on every CPU too, as goalloc's and Go's collectors use the
 * CPUs the mutator leaves free. */
#define GCB_BOEHM_INIT()                                   \
  do {                                                     \
    gcb_boehm.t0 = gcb_now_ns();                           \
    GC_set_on_collection_event(gcb_boehm_event);           \
    GC_INIT();                                             \
    GC_start_mark_threads();                               \
  } while (0)

/* The gcstats line on stderr; `extra` (may be "") is appended as is. */
static inline void gcb_boehm_report(const char* extra) {
  double wall = (double)(gcb_now_ns() - gcb_boehm.t0);
  struct GC_prof_stats_s ps;
  memset(&ps, 0, sizeof ps);
  GC_get_prof_stats(&ps, sizeof ps);
  fprintf(stderr,
          "gcstats cycles=%lu pause_total_ns=%" PRId64 " pause_max_ns=%" PRId64
          " gc_cpu_fraction=%.6f vmhwm_kib=%lld collections_timed=%" PRIu64 " stw_max_ns=%" PRId64
          " stw_total_ns=%" PRId64 " heap_sys=%lu total_alloc=%lu markers=%d%s%s\n",
          (unsigned long)GC_get_gc_no(), gcb_boehm.total, gcb_boehm.max,
          wall > 0 ? (double)gcb_boehm.total / wall : 0.0, gcb_vmhwm_kib(), gcb_boehm.n,
          gcb_boehm.stw_max, gcb_boehm.stw_total, (unsigned long)ps.heapsize_full,
          (unsigned long)ps.allocd_bytes_before_gc + (unsigned long)ps.bytes_allocd_since_gc,
          GC_get_parallel() + 1, extra[0] ? " " : "", extra);
}

#endif
