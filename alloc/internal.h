// internal.h — shared macros and the fatal-error path of the allocator core.
//
// Everything here is usable from any layer (it touches no allocator state).
// The fatal path formats with a fixed stack buffer and write(2): it never
// allocates, so it is safe inside malloc and after heap corruption.
#pragma once

#include <cstddef>
#include <cstdint>

#ifndef GOALLOC_DEBUG_LEVEL
#define GOALLOC_DEBUG_LEVEL 0
#endif

#define GA_LIKELY(x) __builtin_expect(!!(x), 1)
#define GA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GA_NOINLINE __attribute__((noinline))
#define GA_INLINE inline __attribute__((always_inline))
#define GA_COLD __attribute__((cold, noinline))

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define GOALLOC_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define GOALLOC_SANITIZER 1
#endif
#endif

namespace goalloc {

// Population count without depending on the POPCNT instruction (the x86-64
// baseline lacks it, and GCC then calls a libgcc routine): SWAR, 12 ops.
GA_INLINE constexpr unsigned popcount64(std::uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
}

// A message built without allocating; fatal() writes it to stderr and aborts.
class Msg {
public:
    Msg& s(const char* str);
    Msg& hex(std::uintptr_t v);  // 0x-prefixed lowercase, like %p
    Msg& dec(std::uint64_t v);
    Msg& ptr(const void* p) { return hex(reinterpret_cast<std::uintptr_t>(p)); }
    const char* c_str() const { return buf_; }
    std::size_t size() const { return len_; }
    void write_stderr() const;
    [[noreturn]] void fatal() const;

private:
    char buf_[512];
    std::size_t len_ = 0;
};

// Where diagnostics go: stderr, or a duplicate of it taken at start-up when
// statistics are requested (programs such as sort close stderr in an atexit
// handler, before goalloc's exit summary).
void set_report_fd(int fd);

// Internal invariant broken: "goalloc: fatal error: <what>" and abort.
[[noreturn]] GA_COLD void throw_fatal(const char* what);

}  // namespace goalloc

// GA_ASSERT: cheap internal asserts (debug level >= 1).
#if GOALLOC_DEBUG_LEVEL >= 1
#define GA_ASSERT(cond)                                                              \
    do {                                                                             \
        if (GA_UNLIKELY(!(cond)))                                                    \
            ::goalloc::throw_fatal(__FILE__ ":" GA_STR(__LINE__) ": assert " #cond); \
    } while (0)
#else
#define GA_ASSERT(cond) \
    do {                \
    } while (0)
#endif
#define GA_STR2(x) #x
#define GA_STR(x) GA_STR2(x)
// GA_CHECK: always on.
#define GA_CHECK(cond)                                                              \
    do {                                                                            \
        if (GA_UNLIKELY(!(cond)))                                                   \
            ::goalloc::throw_fatal(__FILE__ ":" GA_STR(__LINE__) ": check " #cond); \
    } while (0)
