// Shared helpers for the collector's tests (tests/test_gc_*.cpp,
// tests/test_stress_gc_*.cpp): hiding pointers from the conservative stack
// scan, scrubbing stale stack slots, retrying collections until an object is
// seen to die, a GC-percent guard, quiet statistics and child processes.
#pragma once

#include <goalloc/gc.hpp>

#include "testutil.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace gctest {

namespace gc = goalloc::gc;

// ---- keeping pointers away from the collector ----
// The collector scans the stacks (and spilled registers) of registered threads
// conservatively: any word that looks like a pointer into a collected object
// keeps it alive. A test that wants an object to die must therefore not hold
// its address anywhere the collector looks: it keeps the address XORed with a
// mask (Hidden) and creates the object in a separate noinline function.
inline constexpr std::uintptr_t kHideMask = 0xA5A5'5A5A'F0F0'0F0Full;
struct Hidden {
    std::uintptr_t v = kHideMask;
    Hidden() = default;
    explicit Hidden(const void* p) : v(reinterpret_cast<std::uintptr_t>(p) ^ kHideMask) {}
    void* get() const { return reinterpret_cast<void*>(v ^ kHideMask); }
    bool null() const { return v == kHideMask; }
};

// Overwrites the stack below the caller's frame: a function that returned may
// leave copies of pointers in its (dead) frame, and the next calls (collect()
// itself, the stop-the-world handshake) can leave those slots uninitialised in
// their live frames, where the conservative scan would find them.
__attribute__((noinline)) inline void ScrubStack() {
    volatile unsigned char buf[64 * 1024];
    std::memset(const_cast<unsigned char*>(buf), 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

// collect() + run_finalizers() until pred() holds, at most max_cycles times.
// Why a retry loop: even with the stack scrubbed, a stale copy of a pointer
// may survive for a cycle in a callee-saved register or in a slot of a frame
// that the scrub cannot reach (e.g. the finalizer thread's or the collector's
// own frames); a correct collector frees the object at a later cycle. A
// pointer that the collector really treats as a root would keep the object
// alive for all cycles, so the tests still fail when they should.
inline bool CollectUntil(const std::function<bool()>& pred, int max_cycles = 6) {
    for (int i = 0; i < max_cycles; i++) {
        ScrubStack();
        gc::collect();
        gc::run_finalizers();
        if (pred()) return true;
    }
    return pred();
}

// Sets the GC percent for a test's duration and restores the previous value.
class GcPercentGuard {
  public:
    explicit GcPercentGuard(int pct) : prev_(gc::set_gc_percent(pct)) {}
    ~GcPercentGuard() { gc::set_gc_percent(prev_); }
    int prev() const { return prev_; }

  private:
    int prev_;
};

inline gc::MemStats ReadStats() {
    gc::MemStats s;
    std::memset(&s, 0, sizeof s);
    gc::read_mem_stats(s);
    return s;
}

inline std::uint64_t NowUnixNs() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// A 64-bit mix (splitmix64's finaliser), for payload checksums.
inline std::uint64_t Mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ---- child processes ----
struct ChildResult {
    bool exited = false;    // normal exit (then status is the exit code)
    int status = -1;        // exit code, or the terminating signal
    bool timed_out = false;  // killed by RunChild after the deadline
    std::string err;        // everything the child wrote to stderr
    std::string out;        // and to stdout
};

// Runs argv with the current environment minus the variables named in
// `unset` (by name) plus `extra` ("NAME=value"), capturing stdout and stderr.
// Kills the child (SIGKILL) after timeout_s seconds.
inline ChildResult RunChild(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra,
                            const std::vector<std::string>& unset = {}, int timeout_s = 120) {
    ChildResult r;
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; e++) {
        std::string kv = *e;
        std::string name = kv.substr(0, kv.find('='));
        bool drop = false;
        for (const auto& u : unset) drop |= (u == name);
        for (const auto& x : extra) drop |= (x.substr(0, x.find('=')) == name);
        if (!drop) envs.push_back(kv);
    }
    for (const auto& x : extra) envs.push_back(x);
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    int errp[2], outp[2];
    if (pipe2(errp, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0) {
        r.err = "pipe failed";
        return r;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    pid_t pid;
    int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    close(errp[1]);
    close(outp[1]);
    if (rc != 0) {
        close(errp[0]);
        close(outp[0]);
        r.err = std::string("posix_spawn failed: ") + std::strerror(rc);
        return r;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    struct pollfd fds[2] = {{errp[0], POLLIN, 0}, {outp[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r.timed_out = true;
            break;
        }
        int n = poll(fds, 2, static_cast<int>(left > 1000 ? 1000 : left));
        if (n <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                (i == 0 ? r.err : r.out).append(buf, static_cast<std::size_t>(got));
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) {
        r.exited = true;
        r.status = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        r.status = WTERMSIG(st);
    }
    return r;
}

inline std::string Describe(const ChildResult& r) {
    std::string s = r.timed_out ? "timed out; " : "";
    s += r.exited ? "exit code " + std::to_string(r.status)
                  : "killed by signal " + std::to_string(r.status);
    std::string err = r.err.size() > 6000 ? "..." + r.err.substr(r.err.size() - 6000) : r.err;
    return s + "\n--- stderr ---\n" + err;
}

}  // namespace gctest
