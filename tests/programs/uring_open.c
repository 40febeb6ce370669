/* Opens PATH through io_uring (IORING_OP_OPENAT, then IORING_OP_OPENAT2), which no open system
 * call carries, and reads from each descriptor; then opens it twice more into the ring's own
 * file table (fixed files: a slot, no descriptor; one slot named, one the kernel picks) and
 * reads each through the ring; then once more each way with IOSQE_CQE_SKIP_SUCCESS (no
 * completion entry when it succeeds: the descriptor is the lowest free one, the slot 0) and
 * reads them; last, in one submitted batch, opens PATH into slot 1 and then /etc/hostname into
 * the same slot, so that when the batch's completions are posted the slot holds the other file.
 * No liburing (ring.h). Prints each result.
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

/* An open into the ring's file table: its result, then a read through the ring from `slot`. */
static void report_fixed(struct ring *r, const char *what, int res, int slot) {
    printf("%s=%d (%s)", what, res, res < 0 ? strerror(-res) : "ok");
    if (res >= 0) {
        char buf[64];
        struct io_uring_sqe *sqe = ring_sqe(r);
        sqe->opcode = IORING_OP_READ;
        sqe->fd = slot;
        sqe->flags = IOSQE_FIXED_FILE;
        sqe->addr = (unsigned long)buf;
        sqe->len = sizeof buf;
        printf(" slot %d read %d bytes", slot, ring_run(r));
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
    struct io_uring_sqe *sqe = ring_openat(&r, argv[1]);
    report("IORING_OP_OPENAT", ring_run(&r));
    struct open_how how = {.flags = O_RDONLY};
    sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_OPENAT2;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[1];
    sqe->addr2 = (unsigned long)&how;
    sqe->len = sizeof how;
    report("IORING_OP_OPENAT2", ring_run(&r));

    /* Two empty slots in the ring's file table. */
    int slots[2] = {-1, -1};
    if (syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_FILES, slots, 2) < 0) {
        perror("io_uring_register");
        return 1;
    }
    sqe = ring_openat(&r, argv[1]);
    sqe->file_index = 1; /* slot 0 */
    report_fixed(&r, "IORING_OP_OPENAT fixed", ring_run(&r), 0);
    sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_OPENAT2;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)argv[1];
    sqe->addr2 = (unsigned long)&how;
    sqe->len = sizeof how;
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
    int res = ring_run(&r);
    report_fixed(&r, "IORING_OP_OPENAT2 fixed", res, res);

    /* No completion entries: the opens' results are known only by where they must be. */
    int lowest = dup(0);
    close(lowest);
    sqe = ring_openat(&r, argv[1]);
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    if (ring_submit(&r) < 0) return 1;
    ssize_t n = read_when_open(lowest);
    printf("IORING_OP_OPENAT skip=%d (%s) read %zd bytes\n", lowest, n >= 0 ? "ok" : "nothing", n);
    sqe = ring_openat(&r, argv[1]);
    sqe->file_index = 1; /* slot 0, again */
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
    if (ring_submit(&r) < 0) return 1;
    usleep(50000);
    report_fixed(&r, "IORING_OP_OPENAT fixed skip", 0, 0);

    /* One batch, two opens into slot 1: PATH, then another file over it. */
    struct ring b;
    if (ring_setup(&b, 2) < 0) return 1;
    if (syscall(__NR_io_uring_register, b.fd, IORING_REGISTER_FILES, slots, 2) < 0) {
        perror("io_uring_register");
        return 1;
    }
    unsigned tail = *(unsigned *)(b.sq + b.p.sq_off.tail);
    unsigned mask = *(unsigned *)(b.sq + b.p.sq_off.ring_mask);
    const char *paths[2] = {argv[1], "/etc/hostname"};
    for (unsigned i = 0; i < 2; i++) {
        struct io_uring_sqe *s = &b.sqes[(tail + i) & mask];
        memset(s, 0, sizeof *s);
        s->opcode = IORING_OP_OPENAT;
        s->fd = AT_FDCWD;
        s->addr = (unsigned long)paths[i];
        s->open_flags = O_RDONLY;
        s->file_index = 2; /* slot 1 */
        ((unsigned *)(b.sq + b.p.sq_off.array))[(tail + i) & mask] = (tail + i) & mask;
    }
    __atomic_store_n((unsigned *)(b.sq + b.p.sq_off.tail), tail + 2, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, b.fd, 2, 2, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter");
        return 1;
    }
    unsigned head = __atomic_load_n((unsigned *)(b.cq + b.p.cq_off.head), __ATOMIC_ACQUIRE);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(b.cq + b.p.cq_off.cqes);
    unsigned cmask = *(unsigned *)(b.cq + b.p.cq_off.ring_mask);
    printf("batch into one slot: %d (%s), %d (%s)\n", cqes[head & cmask].res,
           cqes[head & cmask].res < 0 ? "failed" : "ok", cqes[(head + 1) & cmask].res,
           cqes[(head + 1) & cmask].res < 0 ? "failed" : "ok");
    __atomic_store_n((unsigned *)(b.cq + b.p.cq_off.head), head + 2, __ATOMIC_RELEASE);
    return 0;
}
