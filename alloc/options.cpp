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

// GODEBUG-style lists: "name=value,name=value". Sets *out if name is present.
static void godebug_int(const char* list, const char* name, int* out) {
    if (list == nullptr) return;
    std::size_t n = std::strlen(name);
    for (const char* p = list; *p;) {
        const char* e = std::strchr(p, ',');
        std::size_t len = e ? static_cast<std::size_t>(e - p) : std::strlen(p);
        if (len > n && std::strncmp(p, name, n) == 0 && p[n] == '=') {
            int v = 0;
            for (const char* q = p + n + 1; q < p + len && *q >= '0' && *q <= '9'; q++) v = v * 10 + (*q - '0');
            *out = v;
        }
        p += len;
        if (*p == ',') p++;
    }
}

static void bad_value(const char* name, const char* v, const char* why) {
    Msg m;
    m.s("goalloc: ignoring ").s(name).s("=").s(v).s(": ").s(why).s("\n");
    m.write_stderr();
}

// GOMEMLIMIT: a number of bytes with an optional suffix B, KiB, MiB, GiB, TiB
// (Go's syntax; also k/m/g as elsewhere in goalloc), or "off".
bool parse_memlimit(const char* s, std::int64_t* out) {
    if (std::strcmp(s, "off") == 0) {
        *out = INT64_MAX;
        return true;
    }
    std::uint64_t v = 0;
    const char* p = s;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + static_cast<std::uint64_t>(*p - '0');
    }
    int shift = 0;
    if (*p == 0 || std::strcmp(p, "B") == 0) shift = 0;
    else if (std::strcmp(p, "KiB") == 0) shift = 10;
    else if (std::strcmp(p, "MiB") == 0) shift = 20;
    else if (std::strcmp(p, "GiB") == 0) shift = 30;
    else if (std::strcmp(p, "TiB") == 0) shift = 40;
    else {
        std::uint64_t x;
        if (!parse_size(s, &x) || x > static_cast<std::uint64_t>(INT64_MAX)) return false;
        *out = static_cast<std::int64_t>(x);
        return true;
    }
    if (v > (static_cast<std::uint64_t>(INT64_MAX) >> shift)) return false;
    *out = static_cast<std::int64_t>(v << shift);
    return true;
}

const Options& options() {
    if (GA_LIKELY(g_state.load(std::memory_order_acquire) == 2)) return g_options;
    int expected = 0;
    if (g_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        g_options.verbose = int_option("GOALLOC_VERBOSE", 0);
        g_options.stats = int_option("GOALLOC_STATS", 0);
        g_options.arena_hints = int_option("GOALLOC_ARENA_HINTS", 1) != 0;
        if (const char* v = env("GOGC")) {
            std::uint64_t x;
            if (std::strcmp(v, "off") == 0) g_options.gogc = -1;
            else if (parse_size(v, &x) && x <= 1000000) g_options.gogc = static_cast<int>(x);
            else bad_value("GOGC", v, "want a percentage or \"off\"");
        }
        if (const char* v = env("GOMEMLIMIT")) {
            std::int64_t x;
            if (parse_memlimit(v, &x)) g_options.memlimit = x;
            else bad_value("GOMEMLIMIT", v, "want bytes with an optional B/KiB/MiB/GiB/TiB suffix, or \"off\"");
        }
        for (const char* var : {"GODEBUG", "GOALLOC_DEBUG"}) {
            godebug_int(env(var), "gctrace", &g_options.gctrace);
            godebug_int(env(var), "gccheckmark", &g_options.gccheckmark);
            godebug_int(env(var), "gcstoptheworld", &g_options.gcstoptheworld);
            godebug_int(env(var), "gcpacertrace", &g_options.gcpacertrace);
        }
        g_options.gcidlemark = int_option("GOALLOC_GC_IDLE_MARK", 1) != 0;
        g_options.gcfractional = int_option("GOALLOC_GC_FRACTIONAL", 1) != 0;
        g_options.gcprefault = int_option("GOALLOC_GC_PREFAULT", 0) != 0;
        if (const char* v = env("GOALLOC_GC_HUGEPAGES")) {
            if (std::strcmp(v, "auto") == 0) g_options.gchugepages = -1;
            else if (std::strcmp(v, "0") == 0 || std::strcmp(v, "1") == 0) g_options.gchugepages = v[0] - '0';
            else bad_value("GOALLOC_GC_HUGEPAGES", v, "want 0, 1 or auto");
        }
        g_options.gcbgsweep = int_option("GOALLOC_GC_BG_SWEEP", 1) != 0;
        g_options.gcscavenge = int_option("GOALLOC_GC_SCAVENGE", 1) != 0;
        if (const char* v = env("GOALLOC_GC_MARK_PREFETCH")) {
            if (std::strcmp(v, "auto") == 0) g_options.gcmarkprefetch = 0;
            else if (std::strcmp(v, "fifo") == 0) g_options.gcmarkprefetch = 1;
            else if (std::strcmp(v, "direct") == 0) g_options.gcmarkprefetch = 2;
            else bad_value("GOALLOC_GC_MARK_PREFETCH", v, "want auto, fifo or direct");
        }
        if (const char* v = env("GOALLOC_GC_TRIGGER_MIN")) {
            std::uint64_t x;
            if (parse_size(v, &x) && x >= 50 && x <= 95) g_options.gctriggermin = static_cast<int>(x);
            else bad_value("GOALLOC_GC_TRIGGER_MIN", v, "want a percentage from 50 to 95");
        }
        g_options.gcpoison = int_option("GOALLOC_GC_POISON", -1 + 0);
        if (g_options.gcpoison < 0) g_options.gcpoison = GOALLOC_DEBUG_LEVEL >= 2 ? 1 : 0;
        if (g_options.stats || g_options.verbose || g_options.gctrace) {
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
