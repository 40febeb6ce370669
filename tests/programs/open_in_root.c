/* Opens NAME with DIR as its root (openat2's RESOLVE_IN_ROOT: an absolute NAME, `..` and
 * absolute symlinks stay below DIR), so that the name as passed is not the file's path:
 * `open_in_root /etc /shadow` opens /etc/shadow. First by the openat2 system call, then by
 * io_uring's IORING_OP_OPENAT2 with IOSQE_CQE_SKIP_SUCCESS (no completion when it succeeds:
 * reported by its name), then the same again waiting for its completion. Prints each result.
 * With SECONDS, waits that long before it exits (its descriptor of DIR still open).
 * Usage: open_in_root DIR NAME [SECONDS] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>

#include "ring.h"

static void report(const char *what, int fd) {
    printf("%s=%d (%s)\n", what, fd, fd < 0 ? strerror(-fd) : "ok");
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s DIR NAME [SECONDS]\n", argv[0]);
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        perror(argv[1]);
        return 1;
    }
    struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_IN_ROOT};
    long fd = syscall(__NR_openat2, dir, argv[2], &how, sizeof how);
    report("openat2", fd < 0 ? -errno : (int)fd);

    struct ring r;
    if (ring_setup(&r, 4) < 0) return 1;
    for (int skip = 1; skip >= 0; skip--) {
        struct io_uring_sqe *sqe = ring_sqe(&r);
        sqe->opcode = IORING_OP_OPENAT2;
        sqe->fd = dir;
        sqe->addr = (unsigned long)argv[2];
        sqe->addr2 = (unsigned long)&how;
        sqe->len = sizeof how;
        if (skip) {
            int lowest = dup(0);
            close(lowest);
            sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
            if (ring_submit(&r) < 0) return 1;
            ssize_t n = read_when_open(lowest);
            /* A refused open does post its completion: read it. */
            if (n < 0) {
                report("IORING_OP_OPENAT2 skip", ring_reap(&r));
                continue;
            }
            printf("IORING_OP_OPENAT2 skip=%d (ok)\n", lowest);
            close(lowest);
        } else {
            report("IORING_OP_OPENAT2", ring_run(&r));
        }
    }
    if (argc == 4) sleep(atoi(argv[3]));
    return 0;
}
