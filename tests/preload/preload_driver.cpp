// preload_driver.cpp — GoogleTest driver that runs the helper programs of
// tests/preload/ as separate processes with goalloc preloaded, and judges
// their exit status and output. The driver itself is not linked with goalloc
// and does not preload it.
//
//   Misuse/<case>   misuse CASE must die of SIGABRT with
//                   "goalloc: <fn>(): double free of <addr>" or
//                   "goalloc: <fn>(): invalid pointer <addr> (...)" on stderr,
//                   <fn> the entry point, <addr> the misused pointer (%p).
//   Config.*        GOALLOC_STATS=1 (the exact summary line at exit),
//                   GOALLOC_VERBOSE=1, and scripts/goalloc-run.
//
// Paths come from the build (CMake generator expressions): GA_PRELOAD_LIB,
// GA_MISUSE_EXE, GA_SMOKE_EXE, GA_GOALLOC_RUN.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct Result {
    int status = -1;  // as from waitpid
    bool timed_out = false;
    std::string out, err;

    bool exited(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
    bool signaled(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
    std::string describe() const {
        std::ostringstream s;
        if (timed_out) s << "timed out; ";
        if (WIFEXITED(status))
            s << "exited with " << WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
            s << "killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
        else
            s << "status " << status;
        s << "\n--- stdout ---\n" << out << "--- stderr ---\n" << err << "---";
        return s.str();
    }
};

// Runs argv with the driver's environment, minus LD_PRELOAD and GOALLOC_*,
// plus `set` (name -> value). Captures stdout and stderr; kills the child
// after timeout_s seconds.
Result run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& set,
           int timeout_s = 60) {
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; e++) {
        std::string kv(*e);
        std::string name = kv.substr(0, kv.find('='));
        if (name == "LD_PRELOAD" || name.rfind("GOALLOC_", 0) == 0 || set.count(name)) continue;
        env_store.push_back(kv);
    }
    for (const auto& [k, v] : set) env_store.push_back(k + "=" + v);
    std::vector<char*> envp, args;
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_store = argv;
    for (auto& s : argv_store) args.push_back(s.data());
    args.push_back(nullptr);

    Result r;
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        r.err = "pipe failed";
        return r;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(outp[1]);
    close(errp[1]);
    if (rc != 0) {
        close(outp[0]);
        close(errp[0]);
        r.err = std::string("posix_spawn(") + argv[0] + "): " + strerror(rc);
        return r;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_fds = 2;
    while (open_fds > 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = timeout_s * 1000L - ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left_ms <= 0) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(fds, 2, static_cast<int>(left_ms));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (auto& f : fds)
        if (f.fd >= 0) close(f.fd);
    while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
    }
    return r;
}

std::map<std::string, std::string> preload(std::map<std::string, std::string> extra = {}) {
    extra["LD_PRELOAD"] = GA_PRELOAD_LIB;
    return extra;
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

// ---- misuse ----

struct MisuseCase {
    const char* name;
    const char* fn;    // regex: the entry point named in the message
    const char* kind;  // regex: "double free of" and/or "invalid pointer"
};

constexpr char kDouble[] = "double free of";
constexpr char kInvalid[] = "invalid pointer";
// A freed large object's pages go back to the page heap, and a freed small
// object's span may go back too: then only "not allocated here" can be seen.
constexpr char kFreed[] = "double free of|invalid pointer";

const MisuseCase kMisuseCases[] = {
    {"double_free_small", "free", kDouble},
    {"double_free_large", "free", kFreed},
    {"interior_small", "free", kInvalid},
    {"interior_large", "free", kInvalid},
    {"stack", "free", kInvalid},
    {"wild", "free", kInvalid},
    {"global", "free", kInvalid},
    {"realloc_freed", "realloc", kFreed},
    {"realloc_interior", "realloc", kInvalid},
    {"realloc_wild", "realloc", kInvalid},
    {"delete_freed", "operator delete", kDouble},
    {"delete_array_freed", "operator delete\\[\\]", kDouble},
    {"delete_sized_freed", "operator delete", kDouble},
    {"delete_aligned_freed", "operator delete", kDouble},
    {"delete_wild", "operator delete", kInvalid},
    {"delete_interior", "operator delete", kInvalid},
    {"usable_size_freed", "malloc_usable_size", kFreed},
    {"usable_size_wild", "malloc_usable_size", kInvalid},
    {"free_sized_double", "free_sized", kDouble},
    {"free_aligned_sized_double", "free_aligned_sized", kDouble},
    {"cfree_double", "cfree", kDouble},
    {"libc_free_double", "__libc_free|free", kDouble},
    {"double_free_remote_live_thread", "free", kDouble},
    {"double_free_remote_exited_thread", "free", kDouble},
    {"double_free_after_reuse_cycle", "free", kFreed},
};

// What gtest prints for a parameter (and ctest lists): the case name.
void PrintTo(const MisuseCase& c, std::ostream* os) { *os << c.name; }

class MisuseTest : public ::testing::TestWithParam<MisuseCase> {};

TEST_P(MisuseTest, Aborts) {
    const MisuseCase& c = GetParam();
    Result r = run({GA_MISUSE_EXE, c.name}, preload());
    ASSERT_FALSE(r.timed_out) << r.describe();
    ASSERT_EQ(r.err.find("not running on goalloc"), std::string::npos) << r.describe();
    ASSERT_EQ(r.err.find("misuse not detected"), std::string::npos) << "misuse went unnoticed\n" << r.describe();
    EXPECT_TRUE(r.signaled(SIGABRT)) << "want death by SIGABRT\n" << r.describe();

    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex("misuse target (0x[0-9a-f]+)\n")))
        << "the program did not announce its target\n" << r.describe();
    const std::string addr = m[1];
    const std::string text = r.err.substr(static_cast<std::size_t>(m.position(0) + m.length(0)));
    std::regex want("(^|\n)goalloc: (" + std::string(c.fn) + ")\\(\\): (" + c.kind + ") " + addr +
                    "([^0-9a-fA-F]|$)");
    EXPECT_TRUE(std::regex_search(text, want))
        << "want a line 'goalloc: " << c.fn << "(): " << c.kind << " " << addr << "...'\n" << r.describe();
    // The general form of the message, whatever the case.
    EXPECT_TRUE(std::regex_search(text, std::regex("goalloc: [a-z_ \\[\\]]+\\(\\): (double free of 0x[0-9a-f]+"
                                                   "|invalid pointer 0x[0-9a-f]+ \\([^)\n]+\\))")))
        << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Misuse, MisuseTest, ::testing::ValuesIn(kMisuseCases),
                         [](const ::testing::TestParamInfo<MisuseCase>& i) { return std::string(i.param.name); });

// Every case the program knows is covered here, and vice versa.
TEST(MisuseList, DriverCoversEveryCase) {
    Result r = run({GA_MISUSE_EXE, "--list"}, {});
    ASSERT_TRUE(r.exited(0)) << r.describe();
    std::vector<std::string> listed = lines(r.out);
    std::vector<std::string> ours;
    for (const auto& c : kMisuseCases) ours.push_back(c.name);
    std::sort(listed.begin(), listed.end());
    std::sort(ours.begin(), ours.end());
    EXPECT_EQ(listed, ours);
}

TEST(MisuseList, UnknownCaseIsAnError) {
    Result r = run({GA_MISUSE_EXE, "no_such_case"}, preload());
    EXPECT_TRUE(r.exited(2)) << r.describe();
}

// ---- configuration ----

const std::regex kStatsLine(
    "^goalloc: stats: mallocs=(\\d+) frees=(\\d+) live_objects=(\\d+) bytes_in_use=(\\d+) "
    "bytes_mapped=(\\d+) bytes_released=(\\d+) spans_in_use=(\\d+) arenas=(\\d+)$");

TEST(Config, StatsSummaryAtExit) {
    Result r = run({GA_SMOKE_EXE, "5000"}, preload({{"GOALLOC_STATS", "1"}}));
    ASSERT_TRUE(r.exited(0)) << r.describe();
    EXPECT_NE(r.out.find("goalloc: yes"), std::string::npos) << r.describe();
    std::vector<std::string> err = lines(r.err);
    ASSERT_FALSE(err.empty()) << "GOALLOC_STATS=1 printed nothing\n" << r.describe();
    // The block's last line is the machine-readable summary, exactly.
    std::smatch m;
    ASSERT_TRUE(std::regex_match(err.back(), m, kStatsLine)) << "last stderr line: '" << err.back() << "'\n"
                                                             << r.describe();
    unsigned long long mallocs = std::stoull(m[1]), frees = std::stoull(m[2]), live = std::stoull(m[3]);
    unsigned long long in_use = std::stoull(m[4]), mapped = std::stoull(m[5]), released = std::stoull(m[6]);
    unsigned long long spans = std::stoull(m[7]), arenas = std::stoull(m[8]);
    EXPECT_GE(mallocs, 5000u);
    EXPECT_GE(frees, 4500u);
    EXPECT_EQ(live, mallocs - frees);
    EXPECT_GE(live, 500u);  // every tenth object is still live
    EXPECT_GT(in_use, 0u);
    EXPECT_GE(mapped, in_use);
    EXPECT_LE(released, mapped);
    EXPECT_GT(spans, 0u);
    EXPECT_GE(arenas, 1u);
    // One summary per process, and nothing but goalloc's lines on stderr.
    int summaries = 0;
    for (const auto& l : err) {
        summaries += l.rfind("goalloc: stats: ", 0) == 0;
        EXPECT_EQ(l.rfind("goalloc: ", 0), 0u) << "unexpected stderr line '" << l << "'";
    }
    EXPECT_EQ(summaries, 1);
    // The regex the real-program tests use finds it too.
    EXPECT_TRUE(std::regex_search(r.err, std::regex("goalloc: stats: mallocs=(\\d+)")));
}

TEST(Config, StatsCountWhatTheProgramDoes) {
    Result a = run({GA_SMOKE_EXE, "1000"}, preload({{"GOALLOC_STATS", "1"}}));
    Result b = run({GA_SMOKE_EXE, "21000"}, preload({{"GOALLOC_STATS", "1"}}));
    ASSERT_TRUE(a.exited(0) && b.exited(0)) << a.describe() << b.describe();
    std::smatch ma, mb;
    ASSERT_TRUE(std::regex_search(a.err, ma, std::regex("goalloc: stats: mallocs=(\\d+) frees=(\\d+)")));
    ASSERT_TRUE(std::regex_search(b.err, mb, std::regex("goalloc: stats: mallocs=(\\d+) frees=(\\d+)")));
    long long dm = std::stoll(mb[1]) - std::stoll(ma[1]);
    long long df = std::stoll(mb[2]) - std::stoll(ma[2]);
    EXPECT_GE(dm, 20000);
    EXPECT_LE(dm, 20100);
    EXPECT_GE(df, 18000);
    EXPECT_LE(df, 18100);
}

// GNU coreutils (sort, ls, ...) close stdout and stderr in an atexit handler
// (close_stdout), which runs before the library's destructor: the summary
// must still reach the original stderr (e.g. through a descriptor duplicated
// at start-up), or GOALLOC_STATS=1 says nothing about such programs.
TEST(Config, StatsSurviveStderrClosedAtExit) {
    Result r = run({GA_SMOKE_EXE, "2000", "0", "close-stderr"}, preload({{"GOALLOC_STATS", "1"}}));
    ASSERT_TRUE(r.exited(0)) << r.describe();
    EXPECT_NE(r.out.find("goalloc: yes"), std::string::npos) << r.describe();
    std::vector<std::string> err = lines(r.err);
    ASSERT_FALSE(err.empty()) << "no summary from a program that closes stderr at exit\n" << r.describe();
    std::smatch m;
    ASSERT_TRUE(std::regex_match(err.back(), m, kStatsLine)) << r.describe();
    EXPECT_GE(std::stoull(m[1]), 2000u);
}

TEST(Config, NoStatsByDefault) {
    for (const char* v : {"", "0"}) {
        std::map<std::string, std::string> env;
        if (*v) env["GOALLOC_STATS"] = v;
        Result r = run({GA_SMOKE_EXE, "1000"}, preload(env));
        ASSERT_TRUE(r.exited(0)) << r.describe();
        EXPECT_NE(r.out.find("goalloc: yes"), std::string::npos) << r.describe();
        EXPECT_EQ(r.err, "") << "GOALLOC_STATS=" << v << ": stderr should be empty\n" << r.describe();
    }
}

TEST(Config, VerboseReportsArenaReservations) {
    Result quiet = run({GA_SMOKE_EXE, "1000", "300"}, preload());
    ASSERT_TRUE(quiet.exited(0)) << quiet.describe();
    EXPECT_EQ(quiet.err, "") << quiet.describe();

    Result small = run({GA_SMOKE_EXE, "1000"}, preload({{"GOALLOC_VERBOSE", "1"}}));
    ASSERT_TRUE(small.exited(0)) << small.describe();
    std::vector<std::string> l1 = lines(small.err);
    EXPECT_GE(l1.size(), 1u) << "GOALLOC_VERBOSE=1 printed nothing\n" << small.describe();
    for (const auto& l : l1) EXPECT_EQ(l.rfind("goalloc: ", 0), 0u) << "line '" << l << "'";
    // stdout is the program's alone
    Result plain = run({GA_SMOKE_EXE, "1000"}, preload());
    EXPECT_EQ(small.out, plain.out);

    // 300 MiB live: more than the first arena, so more reservations.
    Result big = run({GA_SMOKE_EXE, "1000", "300"}, preload({{"GOALLOC_VERBOSE", "1"}}));
    ASSERT_TRUE(big.exited(0)) << big.describe();
    std::vector<std::string> l2 = lines(big.err);
    for (const auto& l : l2) EXPECT_EQ(l.rfind("goalloc: ", 0), 0u) << "line '" << l << "'";
    EXPECT_GT(l2.size(), l1.size()) << "no additional line for the arenas a 300 MiB heap needs\n"
                                    << small.describe() << big.describe();
}

TEST(Config, StatsAndVerboseTogether) {
    Result r = run({GA_SMOKE_EXE, "1000", "100"}, preload({{"GOALLOC_VERBOSE", "1"}, {"GOALLOC_STATS", "1"}}));
    ASSERT_TRUE(r.exited(0)) << r.describe();
    std::vector<std::string> err = lines(r.err);
    ASSERT_GE(err.size(), 2u) << r.describe();
    EXPECT_TRUE(std::regex_match(err.back(), kStatsLine)) << r.describe();
    std::smatch m;
    ASSERT_TRUE(std::regex_match(err.back(), m, kStatsLine));
    EXPECT_GE(std::stoull(m[8]), 2u) << "100 MiB live needs more than one 64 MiB arena";
}

TEST(Config, GoallocRunPreloadsTheLibrary) {
    Result r = run({GA_GOALLOC_RUN, GA_SMOKE_EXE, "100"}, {{"GOALLOC_LIB", GA_PRELOAD_LIB}});
    ASSERT_TRUE(r.exited(0)) << r.describe();
    EXPECT_NE(r.out.find("goalloc: yes"), std::string::npos) << r.describe();
    // Without it the same program is on glibc: the check above means something.
    Result bare = run({GA_SMOKE_EXE, "100"}, {});
    ASSERT_TRUE(bare.exited(0)) << bare.describe();
    EXPECT_NE(bare.out.find("goalloc: no"), std::string::npos) << bare.describe();
    // Same output otherwise.
    EXPECT_EQ(r.out.substr(r.out.find("checksum")), bare.out.substr(bare.out.find("checksum")));
}

TEST(Config, GoallocRunWithStats) {
    Result r = run({GA_GOALLOC_RUN, GA_SMOKE_EXE, "100"}, {{"GOALLOC_LIB", GA_PRELOAD_LIB}, {"GOALLOC_STATS", "1"}});
    ASSERT_TRUE(r.exited(0)) << r.describe();
    std::vector<std::string> err = lines(r.err);
    ASSERT_FALSE(err.empty()) << r.describe();
    EXPECT_TRUE(std::regex_match(err.back(), kStatsLine)) << r.describe();
}

TEST(Config, GoallocRunKeepsAnExistingPreload) {
    // The library first, then what was there (an innocuous library: libm).
    Result r = run({GA_GOALLOC_RUN, GA_SMOKE_EXE, "10"}, {{"GOALLOC_LIB", GA_PRELOAD_LIB}, {"LD_PRELOAD", "libm.so.6"}});
    ASSERT_TRUE(r.exited(0)) << r.describe();
    EXPECT_NE(r.out.find("goalloc: yes"), std::string::npos) << r.describe();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("LD_PRELOAD=([^\n]*)"))) << r.describe();
    std::string v = m[1];
    EXPECT_NE(v.find("libgoalloc"), std::string::npos) << v;
    EXPECT_NE(v.find(":libm.so.6"), std::string::npos) << v;
    EXPECT_LT(v.find("libgoalloc"), v.find("libm.so.6")) << v;
}

TEST(Config, GoallocRunErrors) {
    Result missing = run({GA_GOALLOC_RUN, GA_SMOKE_EXE}, {{"GOALLOC_LIB", "/nonexistent/libgoalloc.so"}});
    EXPECT_TRUE(missing.exited(127)) << missing.describe();
    EXPECT_NE(missing.err.find("libgoalloc.so not found"), std::string::npos) << missing.describe();
    Result usage = run({GA_GOALLOC_RUN}, {{"GOALLOC_LIB", GA_PRELOAD_LIB}});
    EXPECT_TRUE(usage.exited(2)) << usage.describe();
    EXPECT_NE(usage.err.find("usage"), std::string::npos) << usage.describe();
}

}  // namespace
