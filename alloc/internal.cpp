// internal.cpp — the allocation-free message formatter and fatal path.
#include "internal.h"

#include <unistd.h>

#include <cstdlib>

namespace goalloc {

static int g_report_fd = 2;

void set_report_fd(int fd) { g_report_fd = fd; }

Msg& Msg::s(const char* str) {
    while (*str && len_ + 1 < sizeof(buf_)) buf_[len_++] = *str++;
    buf_[len_] = 0;
    return *this;
}

Msg& Msg::hex(std::uintptr_t v) {
    char tmp[2 + 16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    s("0x");
    while (n > 0 && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
    buf_[len_] = 0;
    return *this;
}

Msg& Msg::dec(std::uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && len_ + 1 < sizeof(buf_)) buf_[len_++] = tmp[--n];
    buf_[len_] = 0;
    return *this;
}

void Msg::write_stderr() const {
    std::size_t off = 0;
    while (off < len_) {
        ssize_t w = ::write(g_report_fd, buf_ + off, len_ - off);
        if (w <= 0) break;
        off += static_cast<std::size_t>(w);
    }
}

void Msg::fatal() const {
    write_stderr();
    std::abort();
}

void throw_fatal(const char* what) {
    Msg m;
    m.s("goalloc: fatal error: ").s(what).s("\n");
    m.fatal();
}

}  // namespace goalloc
