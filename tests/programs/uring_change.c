/* Renames, links or unlinks by name through io_uring (IORING_OP_RENAMEAT, _LINKAT, _UNLINKAT),
 * which no system call carries: relative names start from the working directory. No liburing
 * (ring.h). Prints the result. With `skip` last, the request has IOSQE_CQE_SKIP_SUCCESS (no
 * completion entry when it succeeds): its result is then told by the file's presence.
 * Usage: uring_change rename OLD NEW [skip] | link OLD NEW [skip] | unlink PATH [skip] */
#define _GNU_SOURCE
#include <fcntl.h>

#include "ring.h"

int main(int argc, char **argv) {
    int skip = argc > 3 && !strcmp(argv[argc - 1], "skip");
    int args = argc - skip;
    int two = args == 4 && (!strcmp(argv[1], "rename") || !strcmp(argv[1], "link"));
    if (!two && !(args == 3 && !strcmp(argv[1], "unlink"))) {
        fprintf(stderr, "usage: %s rename OLD NEW [skip] | link OLD NEW [skip] | unlink PATH [skip]\n", argv[0]);
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
    if (skip) {
        sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
        if (ring_submit(&r) < 0) return 1;
        /* The change runs in an io-wq worker: wait until its name is gone. */
        for (int i = 0; i < 100 && access(argv[2], F_OK) == 0; i++) usleep(10000);
        int gone = access(argv[2], F_OK) != 0;
        printf("%s skip=%s\n", argv[1], gone || argv[1][0] == 'l' ? "(ok)" : "(still there)");
        return 0;
    }
    int res = ring_run(&r);
    printf("%s=%d (%s)\n", argv[1], res, res < 0 ? strerror(-res) : "ok");
    return res < 0;
}
