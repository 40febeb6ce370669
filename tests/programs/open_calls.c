/* Opens DIR/NAME three ways, each through its own system call: openat(2) relative to a
 * descriptor of DIR, openat2(2) with RESOLVE_NO_SYMLINKS, and open(2) by the whole path. Built
 * as is and, through open_calls_32.c, for i386 (the 32-bit system call ABI). Prints each result.
 * Usage: open_calls DIR NAME */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct how {
    uint64_t flags, mode, resolve;
};

static void report(const char *what, long fd) {
    printf("%s=%ld (%s)\n", what, fd, fd < 0 ? strerror(errno) : "ok");
    if (fd >= 0) close((int)fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: open_calls DIR NAME\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], argv[2]);
    int dir = open(argv[1], O_PATH | O_DIRECTORY);
    report("openat", syscall(SYS_openat, dir, argv[2], O_RDONLY));
    struct how how = {O_RDONLY, 0, 0x04 /* RESOLVE_NO_SYMLINKS */};
    report("openat2", syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how));
    report("open", syscall(SYS_open, path, O_RDONLY));
    return 0;
}
