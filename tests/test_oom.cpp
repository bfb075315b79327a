// Out of memory: in a forked child whose address space is capped with
// RLIMIT_AS, allocations fail with NULL + ENOMEM (no crash), and the allocator
// keeps working once memory is freed.
//
// The child reports through its exit status and stderr, never through GTest
// (a forked child's GTest results would be lost). Skipped under sanitizers,
// whose shadow memory does not fit under an address-space limit.
#include "testutil.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace gatest;

// Child-side failure: print and exit non-zero.
[[noreturn]] void ChildFail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "oom child: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
    _exit(1);
}

// VmSize of this process in bytes, from /proc/self/status.
std::size_t VmSizeBytes() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) ChildFail("cannot open /proc/self/status");
    char line[256];
    std::size_t kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
    std::fclose(f);
    if (kb == 0) ChildFail("no VmSize in /proc/self/status");
    return kb * 1024;
}

// Caps the address space at the current size plus `headroom`.
void LimitAddressSpace(std::size_t headroom) {
    std::size_t limit = VmSizeBytes() + headroom;
    struct rlimit rl;
    rl.rlim_cur = limit;
    rl.rlim_max = limit;
    if (setrlimit(RLIMIT_AS, &rl) != 0) ChildFail("setrlimit: %s", std::strerror(errno));
}

// Runs `child` in a forked process and expects it to exit 0.
template <typename F>
void RunInChild(F child) {
    std::fflush(nullptr);
    pid_t pid = fork();
    ASSERT_NE(pid, -1) << std::strerror(errno);
    if (pid == 0) {
        child();
        std::fflush(nullptr);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        FAIL() << "child killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status))
               << ")";
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child failed (see its message on stderr)";
}

// Touches the allocator on both tiers so its first arena and metadata exist
// before the limit is set.
void WarmUp() {
    void* a = ga_malloc(64);
    void* b = ga_malloc(1 * MiB);
    if (!a || !b) ChildFail("warm-up allocation failed");
    ga_free(a);
    ga_free(b);
}

TEST(Oom, ExhaustingTheAddressSpaceFailsWithEnomemAndTheHeapRecovers) {
    if (GATEST_SANITIZED) GTEST_SKIP() << "RLIMIT_AS does not work with sanitizer shadow memory";
    RunInChild([] {
        constexpr std::size_t kBlock = 1 * MiB;
        constexpr std::size_t kMaxBlocks = 64 * 1024;  // 64 GiB: the limit did not work
        std::vector<void*> blocks;
        blocks.reserve(kMaxBlocks);  // no libc allocation under the limit
        WarmUp();
        const std::uint64_t live0 = QuietStats().live_objects;
        LimitAddressSpace(64 * MiB);

        int err = 0;
        for (;;) {
            errno = 0;
            void* p = ga_malloc(kBlock);
            if (!p) {
                err = errno;
                break;
            }
            std::memset(p, 0x3C, kBlock);
            blocks.push_back(p);
            if (blocks.size() == kMaxBlocks) ChildFail("no allocation failed under RLIMIT_AS");
        }
        if (err != ENOMEM) ChildFail("failed allocation set errno %d (%s), want ENOMEM", err,
                                     std::strerror(err));
        if (blocks.empty()) ChildFail("not even one 1 MiB block fit in 64 MiB of headroom");
        std::fprintf(stderr, "oom child: %zu blocks of 1 MiB before ENOMEM\n", blocks.size());

        // Small allocations may or may not still fit; they must not crash.
        for (int i = 0; i < 1000; i++) {
            errno = 0;
            void* p = ga_malloc(static_cast<std::size_t>(16 + i));
            if (p) {
                ga_free(p);
            } else if (errno != ENOMEM) {
                ChildFail("small malloc failed with errno %d", errno);
            }
        }

        // Free every other block; the freed space must be reusable.
        std::vector<void*> kept;
        kept.reserve(blocks.size());
        for (std::size_t i = 0; i < blocks.size(); i++) {
            if (i % 2) ga_free(blocks[i]);
            else kept.push_back(blocks[i]);
        }
        std::size_t freed_blocks = blocks.size() / 2;
        std::vector<void*> again;
        again.reserve(freed_blocks + 2000);
        for (std::size_t i = 0; i < freed_blocks; i++) {
            void* p = ga_malloc(kBlock / 2);
            if (!p) ChildFail("large allocation %zu of %zu failed after freeing (errno %d)", i,
                              freed_blocks, errno);
            std::memset(p, 0x4D, kBlock / 2);
            again.push_back(p);
        }
        for (int c = 1; c < goalloc::kNumSizeClasses; c++) {
            void* p = ga_malloc(goalloc::class_to_size[c]);
            if (!p) ChildFail("small allocation of class %d failed after freeing (errno %d)", c,
                              errno);
            std::memset(p, 0x5E, goalloc::class_to_size[c]);
            again.push_back(p);
        }
        for (void* p : kept)
            for (std::size_t k = 0; k < kBlock; k += 4096)
                if (static_cast<unsigned char*>(p)[k] != 0x3C)
                    ChildFail("block %p was damaged by the failed allocations", p);

        ga_stats_t s = QuietStats();
        std::uint64_t found = ga_heap_validate();
        if (found != s.live_objects)
            ChildFail("ga_heap_validate() found %llu objects, stats say %llu",
                      (unsigned long long)found, (unsigned long long)s.live_objects);
        if (s.live_objects - live0 != kept.size() + again.size())
            ChildFail("%llu new live objects, the child holds %zu",
                      (unsigned long long)(s.live_objects - live0), kept.size() + again.size());
        for (void* p : kept) ga_free(p);
        for (void* p : again) ga_free(p);
        if (QuietStats().live_objects != live0 || ga_heap_validate() != live0)
            ChildFail("objects left after freeing everything");
    });
}

TEST(Oom, HugeAllocationsUnderAnAddressSpaceLimitFailWithEnomem) {
    if (GATEST_SANITIZED) GTEST_SKIP() << "RLIMIT_AS does not work with sanitizer shadow memory";
    RunInChild([] {
        WarmUp();
        const std::uint64_t live0 = QuietStats().live_objects;
        void* keep = ga_malloc(1000);
        if (!keep) ChildFail("malloc(1000) failed");
        std::memset(keep, 0x77, 1000);
        LimitAddressSpace(512 * MiB);
        const std::size_t huge = 8 * GiB;

        struct Case {
            const char* what;
            void* (*call)(void*, std::size_t);
        } cases[] = {
            {"malloc", [](void*, std::size_t n) { return ga_malloc(n); }},
            {"calloc", [](void*, std::size_t n) { return ga_calloc(n / 8, 8); }},
            {"aligned_alloc", [](void*, std::size_t n) { return ga_aligned_alloc(4 * MiB, n); }},
            {"realloc", [](void* p, std::size_t n) { return ga_realloc(p, n); }},
        };
        for (const Case& c : cases) {
            errno = 0;
            void* p = c.call(keep, huge);
            if (p) ChildFail("%s of 8 GiB under a 512 MiB headroom returned %p", c.what, p);
            if (errno != ENOMEM) ChildFail("%s of 8 GiB: errno %d, want ENOMEM", c.what, errno);
        }
        // The failed realloc left its object alone, and the heap still works.
        for (int i = 0; i < 1000; i++)
            if (static_cast<unsigned char*>(keep)[i] != 0x77) ChildFail("failed realloc damaged its object");
        void* p = ga_malloc(100 * MiB);
        if (!p) ChildFail("100 MiB within the headroom failed (errno %d)", errno);
        std::memset(p, 1, 100 * MiB);
        ga_free(p);
        ga_free(keep);
        ga_stats_t s = QuietStats();
        if (ga_heap_validate() != s.live_objects || s.live_objects != live0)
            ChildFail("live objects left after freeing everything");
    });
}

}  // namespace
