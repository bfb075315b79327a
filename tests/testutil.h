// Shared helpers for goalloc's tests: the expected size class of a request
// (from alloc/sizeclasses.h), statistics at a quiet point, object fill
// patterns, a small PRNG and the work scale for the stress tests.
#pragma once

#include <goalloc/goalloc.h>

#include "sizeclasses.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// ---- sanitizer detection (GCC defines __SANITIZE_*__, clang has __has_feature) ----
#if defined(__SANITIZE_THREAD__)
#define GATEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GATEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GATEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GATEST_ASAN 1
#endif
#endif
#ifndef GATEST_TSAN
#define GATEST_TSAN 0
#endif
#ifndef GATEST_ASAN
#define GATEST_ASAN 0
#endif
#define GATEST_SANITIZED (GATEST_TSAN || GATEST_ASAN)

namespace gatest {

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * KiB;
inline constexpr std::size_t GiB = 1024 * MiB;

// ---- work scale for the stress tests ----
// GOALLOC_TEST_SCALE=<factor> multiplies the amount of work (0.1 = a tenth).
// Without it the factor is 1, or 0.1 under ThreadSanitizer.
inline double WorkScale() {
    if (const char* s = std::getenv("GOALLOC_TEST_SCALE")) {
        char* end = nullptr;
        double v = std::strtod(s, &end);
        if (end != s && v > 0) return v;
    }
    return GATEST_TSAN ? 0.1 : 1.0;
}

// n scaled by WorkScale(), never below `floor`.
inline std::size_t Scaled(std::size_t n, std::size_t floor = 1) {
    double v = static_cast<double>(n) * WorkScale();
    std::size_t r = v < 1 ? 0 : static_cast<std::size_t>(v);
    return r < floor ? floor : r;
}

// ---- Go's size classes, straight from the generated tables ----
// Class of a small request (n <= kMaxSmallSize); n = 0 maps like n = 1.
inline int SizeClassOf(std::size_t n) {
    using namespace goalloc;
    if (n <= kSmallSizeMax) return size_to_class8[(n + kSmallSizeDiv - 1) / kSmallSizeDiv];
    return size_to_class128[(n - kSmallSizeMax + kLargeSizeDiv - 1) / kLargeSizeDiv];
}
inline std::size_t ClassSizeOf(std::size_t n) { return goalloc::class_to_size[SizeClassOf(n)]; }

// The alignment every object of a class is guaranteed by Go's layout: objects
// sit at span base (page aligned) + k * size, so the largest power of two
// dividing the size, capped at the page size ("min align" in sizeclasses.h).
inline std::size_t ClassMinAlign(int cls) {
    std::size_t size = goalloc::class_to_size[cls];
    std::size_t a = size & (~size + 1);
    return a > goalloc::kPageSize ? goalloc::kPageSize : a;
}

// ---- statistics ----
// Merges this thread's counters and reads the global ones. Exact when no other
// thread is using the allocator (joined or flushed).
inline ga_stats_t QuietStats() {
    ga_thread_flush();
    ga_stats_t s;
    std::memset(&s, 0, sizeof s);
    ga_stats(&s);
    return s;
}

// ---- addresses ----
inline std::uintptr_t Addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
inline bool IsAligned(const void* p, std::size_t a) { return Addr(p) % a == 0; }
// "%p" formatting, as goalloc's misuse messages print addresses.
inline std::string HexAddr(const void* p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
}

// ---- a small fast PRNG (splitmix64) ----
struct Rng {
    std::uint64_t state;
    explicit Rng(std::uint64_t seed) : state(seed) {}
    std::uint64_t Next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [lo, hi].
    std::size_t Range(std::size_t lo, std::size_t hi) { return lo + Next() % (hi - lo + 1); }
    bool Percent(unsigned pct) { return Next() % 100 < pct; }
};

// ---- object fill patterns ----
// Each object is filled with words derived from a key that mixes its address,
// size and a seed, so an object overwritten by a neighbour, handed out twice or
// moved without copying shows up when it is verified.
inline std::uint64_t PatternKey(const void* p, std::size_t n, std::uint64_t seed) {
    Rng r(Addr(p) ^ (static_cast<std::uint64_t>(n) << 20) ^ (seed * 0xD6E8FEB86659FD93ull));
    return r.Next() | 1;
}
inline std::uint64_t PatternWord(std::uint64_t key, std::size_t i) {
    return key ^ (static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull);
}
inline void FillPattern(void* p, std::size_t n, std::uint64_t key) {
    unsigned char* b = static_cast<unsigned char*>(p);
    std::size_t words = n / 8;
    for (std::size_t i = 0; i < words; i++) {
        std::uint64_t w = PatternWord(key, i);
        std::memcpy(b + 8 * i, &w, 8);
    }
    if (n % 8) {
        std::uint64_t w = PatternWord(key, words);
        std::memcpy(b + 8 * words, &w, n % 8);
    }
}
// Offset of the first byte that differs from the pattern, or n if none does.
inline std::size_t FirstPatternMismatch(const void* p, std::size_t n, std::uint64_t key) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    std::size_t words = n / 8;
    for (std::size_t i = 0; i < words; i++) {
        std::uint64_t w = PatternWord(key, i), got;
        std::memcpy(&got, b + 8 * i, 8);
        if (got != w) {
            for (std::size_t j = 0; j < 8; j++)
                if (reinterpret_cast<unsigned char*>(&w)[j] != b[8 * i + j]) return 8 * i + j;
        }
    }
    std::uint64_t w = PatternWord(key, words);
    for (std::size_t j = 0; j < n % 8; j++)
        if (reinterpret_cast<unsigned char*>(&w)[j] != b[8 * words + j]) return 8 * words + j;
    return n;
}
inline bool PatternIntact(const void* p, std::size_t n, std::uint64_t key) {
    return FirstPatternMismatch(p, n, key) == n;
}

// Offset of the first non-zero byte, or n if all are zero.
inline std::size_t FirstNonZero(const void* p, std::size_t n) {
    const unsigned char* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; i++)
        if (b[i] != 0) return i;
    return n;
}

}  // namespace gatest
