// options.cpp — the one place that reads GOALLOC_* from the environment.
#include "options.h"

#include <fcntl.h>

#include <atomic>
#include <cstring>

#include "internal.h"

extern char** environ;

namespace goalloc {

static Options g_options;
static std::atomic<int> g_state{0};  // 0 unparsed, 1 parsing, 2 ready

static const char* env(const char* name) {
    std::size_t n = std::strlen(name);
    if (environ == nullptr) return nullptr;
    for (char** e = environ; *e != nullptr; e++)
        if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return nullptr;
}

bool parse_size(const char* s, std::uint64_t* out) {
    if (s == nullptr || *s == 0) return false;
    std::uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + static_cast<std::uint64_t>(*s - '0');
    }
    int shift = 0;
    switch (*s) {
    case 0: break;
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    default: return false;
    }
    if (*s != 0 && !((*s == 'b' || *s == 'B') && s[1] == 0)) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

static int int_option(const char* name, int def) {
    const char* v = env(name);
    std::uint64_t x;
    if (v == nullptr) return def;
    if (!parse_size(v, &x) || x > 1000000) {
        Msg m;
        m.s("goalloc: ignoring ").s(name).s("=").s(v).s(": not a number\n");
        m.write_stderr();
        return def;
    }
    return static_cast<int>(x);
}

const Options& options() {
    if (GA_LIKELY(g_state.load(std::memory_order_acquire) == 2)) return g_options;
    int expected = 0;
    if (g_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        g_options.verbose = int_option("GOALLOC_VERBOSE", 0);
        g_options.stats = int_option("GOALLOC_STATS", 0);
        g_options.arena_hints = int_option("GOALLOC_ARENA_HINTS", 1) != 0;
        if (g_options.stats || g_options.verbose) {
            int fd = fcntl(2, F_DUPFD_CLOEXEC, 100);  // survives the program closing fd 2
            if (fd >= 0) set_report_fd(fd);
        }
        g_state.store(2, std::memory_order_release);
    } else {
        while (g_state.load(std::memory_order_acquire) != 2) __builtin_ia32_pause();
    }
    return g_options;
}

}  // namespace goalloc
