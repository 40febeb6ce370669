/* Opens PATH through io_uring (IORING_OP_OPENAT, then IORING_OP_OPENAT2), which no open system
 * call carries, and reads from each descriptor. No liburing (ring.h). Prints each result.
 * Usage: uring_open PATH */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>

#include "ring.h"

static void report(const char *what, int fd) {
    printf("%s=%d (%s)", what, fd, fd < 0 ? strerror(-fd) : "ok");
    if (fd >= 0) {
        char buf[64];
        printf(" read %zd bytes", read(fd, buf, sizeof buf));
        close(fd);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    struct ring r;
    if (ring_setup(&r, 4) < 0) return 1;
    struct io_uring_sqe *sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[1];
    sqe->open_flags = O_RDONLY;
    report("IORING_OP_OPENAT", ring_run(&r));
    struct open_how how = {.flags = O_RDONLY};
    sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_OPENAT2;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[1];
    sqe->addr2 = (unsigned long)&how;
    sqe->len = sizeof how;
    report("IORING_OP_OPENAT2", ring_run(&r));
    return 0;
}
