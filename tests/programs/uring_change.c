/* Renames, links or unlinks by name through io_uring (IORING_OP_RENAMEAT, _LINKAT, _UNLINKAT),
 * which no system call carries: relative names start from the working directory. No liburing
 * (ring.h). Prints the result.
 * Usage: uring_change rename OLD NEW | link OLD NEW | unlink PATH */
#define _GNU_SOURCE
#include <fcntl.h>

#include "ring.h"

int main(int argc, char **argv) {
    int two = argc == 4 && (!strcmp(argv[1], "rename") || !strcmp(argv[1], "link"));
    if (!two && !(argc == 3 && !strcmp(argv[1], "unlink"))) {
        fprintf(stderr, "usage: %s rename OLD NEW | link OLD NEW | unlink PATH\n", argv[0]);
        return 2;
    }
    struct ring r;
    if (ring_setup(&r, 4) < 0) return 1;
    struct io_uring_sqe *sqe = ring_sqe(&r);
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[2];
    if (two) {
        sqe->opcode = argv[1][0] == 'r' ? IORING_OP_RENAMEAT : IORING_OP_LINKAT;
        sqe->len = AT_FDCWD; /* the new name's directory */
        sqe->addr2 = (unsigned long)argv[3];
    } else {
        sqe->opcode = IORING_OP_UNLINKAT;
    }
    int res = ring_run(&r);
    printf("%s=%d (%s)\n", argv[1], res, res < 0 ? strerror(-res) : "ok");
    return res < 0;
}
