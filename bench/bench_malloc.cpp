// bench_malloc — micro benchmarks of goalloc's ga_* API against glibc malloc, in
// one binary. Every benchmark is registered once per allocator, so its name says
// which one ran: BM_pair/goalloc/64 and BM_pair/glibc/64. scripts/bench.sh runs the
// two families in alternating processes and scripts/bench_report.py compares them.
//
//   BM_pair/A/SIZE            malloc + free of one object
//   BM_batch_lifo/A/SIZE      1000 mallocs, then 1000 frees, newest first
//   BM_batch_fifo/A/SIZE      1000 mallocs, then 1000 frees, oldest first
//   BM_realloc_double/A/MAX   malloc(16), realloc doubling up to MAX, free
//   BM_realloc_step16/A/MAX   malloc(16), realloc +16 bytes up to MAX, free
//   BM_aligned/A/ALIGN/SIZE   aligned_alloc + free
//   BM_calloc/A/SIZE          calloc + free
// Counters: items/s (allocation calls per second), allocs/op and bytes/op
// (calls and bytes requested per iteration, as Go's -benchmem).
// items_per_second counts allocation calls (malloc, calloc, realloc, aligned_alloc).
#include <benchmark/benchmark.h>
#include <goalloc/goalloc.h>

#include <gnu/libc-version.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Goalloc {
  static constexpr const char* kName = "goalloc";
  static void* Malloc(std::size_t n) { return ga_malloc(n); }
  static void* Calloc(std::size_t k, std::size_t n) { return ga_calloc(k, n); }
  static void* Realloc(void* p, std::size_t n) { return ga_realloc(p, n); }
  static void* AlignedAlloc(std::size_t a, std::size_t n) { return ga_aligned_alloc(a, n); }
  static void Free(void* p) { ga_free(p); }
};

struct Glibc {
  static constexpr const char* kName = "glibc";
  static void* Malloc(std::size_t n) { return std::malloc(n); }
  static void* Calloc(std::size_t k, std::size_t n) { return std::calloc(k, n); }
  static void* Realloc(void* p, std::size_t n) { return std::realloc(p, n); }
  static void* AlignedAlloc(std::size_t a, std::size_t n) { return std::aligned_alloc(a, n); }
  static void Free(void* p) { std::free(p); }
};

constexpr int kBatch = 1000;

// Returns false (and marks the benchmark failed) if an allocation returned NULL.
bool Check(benchmark::State& st, const void* p) {
  if (p != nullptr) return true;
  st.SkipWithError("allocation returned NULL");
  return false;
}

// Like Go's -benchmem: allocation calls and bytes requested per iteration,
// plus allocation calls per second (items/s).
void ReportAllocs(benchmark::State& st, std::int64_t calls, std::int64_t bytes) {
  st.SetItemsProcessed(calls);
  st.counters["allocs/op"] = benchmark::Counter(static_cast<double>(calls), benchmark::Counter::kAvgIterations);
  st.counters["bytes/op"] = benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kAvgIterations);
}

template <class A>
void BM_pair(benchmark::State& st) {
  const auto size = static_cast<std::size_t>(st.range(0));
  for (auto _ : st) {
    void* p = A::Malloc(size);
    benchmark::DoNotOptimize(p);
    if (!Check(st, p)) break;
    A::Free(p);
  }
  ReportAllocs(st, st.iterations(), st.iterations() * static_cast<std::int64_t>(size));
}

template <class A, bool kLifo>
void BM_batch(benchmark::State& st) {
  const auto size = static_cast<std::size_t>(st.range(0));
  std::vector<void*> ptrs(kBatch);  // allocated once, outside the timed loop
  for (auto _ : st) {
    for (int i = 0; i < kBatch; i++) {
      ptrs[i] = A::Malloc(size);
      benchmark::DoNotOptimize(ptrs[i]);
    }
    if (!Check(st, ptrs[kBatch - 1])) break;
    if (kLifo) {
      for (int i = kBatch - 1; i >= 0; i--) A::Free(ptrs[i]);
    } else {
      for (int i = 0; i < kBatch; i++) A::Free(ptrs[i]);
    }
    benchmark::ClobberMemory();
  }
  ReportAllocs(st, st.iterations() * kBatch, st.iterations() * kBatch * static_cast<std::int64_t>(size));
}

// Grow one object from 16 bytes to st.range(0) by realloc, the size following
// next(n): doubling (vector-like growth) or +16 B steps (string-like appends).
template <class A, std::size_t (*Next)(std::size_t)>
void RunReallocGrowth(benchmark::State& st) {
  const auto max = static_cast<std::size_t>(st.range(0));
  std::int64_t calls = 0, bytes = 0;
  for (auto _ : st) {
    void* p = A::Malloc(16);
    calls++;
    bytes += 16;
    for (std::size_t n = 32; n <= max; n = Next(n), calls++) {
      p = A::Realloc(p, n);
      bytes += static_cast<std::int64_t>(n);
      benchmark::DoNotOptimize(p);
    }
    if (!Check(st, p)) break;
    A::Free(p);
  }
  ReportAllocs(st, calls, bytes);
}

inline std::size_t Double(std::size_t n) { return n * 2; }
inline std::size_t Plus16(std::size_t n) { return n + 16; }

template <class A>
void BM_realloc_double(benchmark::State& st) { RunReallocGrowth<A, Double>(st); }

template <class A>
void BM_realloc_step16(benchmark::State& st) { RunReallocGrowth<A, Plus16>(st); }

template <class A>
void BM_aligned(benchmark::State& st) {
  const auto align = static_cast<std::size_t>(st.range(0));
  const auto size = static_cast<std::size_t>(st.range(1));
  for (auto _ : st) {
    void* p = A::AlignedAlloc(align, size);
    benchmark::DoNotOptimize(p);
    if (!Check(st, p)) break;
    A::Free(p);
  }
  ReportAllocs(st, st.iterations(), st.iterations() * static_cast<std::int64_t>(size));
}

template <class A>
void BM_calloc(benchmark::State& st) {
  const auto size = static_cast<std::size_t>(st.range(0));
  for (auto _ : st) {
    void* p = A::Calloc(1, size);
    benchmark::DoNotOptimize(p);
    if (!Check(st, p)) break;
    A::Free(p);
  }
  ReportAllocs(st, st.iterations(), st.iterations() * static_cast<std::int64_t>(size));
}

std::string Name(const char* bench, const char* alloc) {
  return std::string(bench) + "/" + alloc;
}

template <class A>
void RegisterFamily() {
  for (std::int64_t size : {8, 16, 32, 64, 128, 256, 512, 1 << 10, 4 << 10, 16 << 10,
                            32 << 10, 64 << 10, 256 << 10, 1 << 20}) {
    benchmark::RegisterBenchmark(Name("BM_pair", A::kName).c_str(), BM_pair<A>)->Arg(size);
  }
  for (std::int64_t size : {16, 128, 1024}) {
    benchmark::RegisterBenchmark(Name("BM_batch_lifo", A::kName).c_str(), BM_batch<A, true>)
        ->Arg(size);
    benchmark::RegisterBenchmark(Name("BM_batch_fifo", A::kName).c_str(), BM_batch<A, false>)
        ->Arg(size);
  }
  for (std::int64_t max : {4 << 10, 1 << 20}) {
    benchmark::RegisterBenchmark(Name("BM_realloc_double", A::kName).c_str(),
                                 BM_realloc_double<A>)->Arg(max);
  }
  benchmark::RegisterBenchmark(Name("BM_realloc_step16", A::kName).c_str(),
                               BM_realloc_step16<A>)->Arg(4 << 10);
  for (auto [align, size] : {std::pair<std::int64_t, std::int64_t>{64, 64}, {64, 1000},
                             {4096, 4096}, {65536, 65536}}) {
    benchmark::RegisterBenchmark(Name("BM_aligned", A::kName).c_str(), BM_aligned<A>)
        ->Args({align, size});
  }
  for (std::int64_t size : {64, 4 << 10, 64 << 10}) {
    benchmark::RegisterBenchmark(Name("BM_calloc", A::kName).c_str(), BM_calloc<A>)->Arg(size);
  }
}

}  // namespace

int main(int argc, char** argv) {
  RegisterFamily<Goalloc>();
  RegisterFamily<Glibc>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("glibc_version", gnu_get_libc_version());
#ifdef GOALLOC_BENCH_DEBUG_LEVEL
  benchmark::AddCustomContext("goalloc_debug_level", std::to_string(GOALLOC_BENCH_DEBUG_LEVEL));
#endif
#ifdef GOALLOC_BENCH_BUILD_TYPE
  benchmark::AddCustomContext("goalloc_build_type", GOALLOC_BENCH_BUILD_TYPE);
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
