/* Fills an io_uring's completion queue (two entries) with NOPs it never reads, so that the
 * next completions overflow, then opens PATH through the ring (its completion overflows too:
 * on kernels that trace only the completions that fit, 6.18, that open is not seen) and reads
 * it. No liburing (ring.h). Prints what it did.
 * Usage: uring_overflow PATH */
#define _GNU_SOURCE
#include <fcntl.h>

#include "ring.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH\n", argv[0]);
        return 2;
    }
    struct ring r;
    if (ring_setup(&r, 1) < 0) return 1;
    for (int i = 0; i < 4; i++) {
        struct io_uring_sqe *sqe = ring_sqe(&r);
        sqe->opcode = IORING_OP_NOP;
        if (ring_submit(&r) < 0) return 1;
    }
    int lowest = dup(0);
    close(lowest);
    ring_openat(&r, argv[1]);
    if (ring_submit(&r) < 0) return 1;
    ssize_t n = read_when_open(lowest);
    printf("cq_entries=%u overflowed open=%d (%s) read %zd bytes\n", r.p.cq_entries, lowest, n >= 0 ? "ok" : "nothing", n);
    return 0;
}
