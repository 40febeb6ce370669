/* An io_uring without liburing, for the test programs: the raw io_uring_setup and
 * io_uring_enter calls and the rings mapped by hand. ring_setup, then ring_run with an SQE
 * filled by the caller: it submits it, waits for its completion and returns its result. */
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ring {
    int fd;
    struct io_uring_params p;
    char *sq, *cq;
    struct io_uring_sqe *sqes;
};

/* 0, or -1 after printing why. */
static inline int ring_setup(struct ring *r, unsigned entries) {
    memset(r, 0, sizeof *r);
    r->fd = syscall(__NR_io_uring_setup, entries, &r->p);
    if (r->fd < 0) {
        perror("io_uring_setup");
        return -1;
    }
    struct io_uring_params *p = &r->p;
    size_t sq_size = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    size_t cq_size = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP)
        sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
    r->sq = mmap(0, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
    r->cq = (p->features & IORING_FEAT_SINGLE_MMAP)
                ? r->sq
                : mmap(0, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
    r->sqes = mmap(0, p->sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                   r->fd, IORING_OFF_SQES);
    if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED) {
        perror("mmap");
        return -1;
    }
    return 0;
}

/* The next SQE, zeroed, for the caller to fill before ring_run. */
static inline struct io_uring_sqe *ring_sqe(struct ring *r) {
    unsigned tail = *(unsigned *)(r->sq + r->p.sq_off.tail);
    struct io_uring_sqe *sqe = &r->sqes[tail & *(unsigned *)(r->sq + r->p.sq_off.ring_mask)];
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

/* An IORING_OP_OPENAT of `path` (from the working directory, read-only) in the next SQE, for
 * the caller to add to (a slot, flags) before ring_run or ring_submit. */
static inline struct io_uring_sqe *ring_openat(struct ring *r, const char *path) {
    struct io_uring_sqe *sqe = ring_sqe(r);
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)path;
    sqe->open_flags = O_RDONLY;
    return sqe;
}

/* Reads from `fd` once something is open there (an open no completion entry tells of), trying
 * for a second: the bytes read, or -1. */
static inline ssize_t read_when_open(int fd) {
    char buf[64];
    ssize_t n = -1;
    for (int i = 0; i < 100 && n < 0; i++) {
        n = read(fd, buf, sizeof buf);
        if (n < 0) usleep(10000);
    }
    return n;
}

/* Makes the SQE of ring_sqe visible to the kernel (not yet submitted). */
static inline void ring_publish(struct ring *r) {
    unsigned tail = *(unsigned *)(r->sq + r->p.sq_off.tail);
    unsigned index = tail & *(unsigned *)(r->sq + r->p.sq_off.ring_mask);
    ((unsigned *)(r->sq + r->p.sq_off.array))[index] = index;
    __atomic_store_n((unsigned *)(r->sq + r->p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
}

/* Submits the SQE of ring_sqe without waiting: for a request with IOSQE_CQE_SKIP_SUCCESS, which
 * makes no completion entry when it succeeds. 0, or -1000000 when io_uring_enter failed. */
static inline int ring_submit(struct ring *r) {
    ring_publish(r);
    if (syscall(__NR_io_uring_enter, r->fd, 1, 0, 0, NULL, 0) < 0) {
        perror("io_uring_enter");
        return -1000000;
    }
    return 0;
}

/* Takes the next completion already posted: its result, or -1000000 when there is none. */
static inline int ring_reap(struct ring *r) {
    unsigned head = __atomic_load_n((unsigned *)(r->cq + r->p.cq_off.head), __ATOMIC_ACQUIRE);
    unsigned tail = __atomic_load_n((unsigned *)(r->cq + r->p.cq_off.tail), __ATOMIC_ACQUIRE);
    if (head == tail) return -1000000;
    int res = ((struct io_uring_cqe *)(r->cq + r->p.cq_off.cqes))[head & *(unsigned *)(r->cq + r->p.cq_off.ring_mask)]
                  .res;
    __atomic_store_n((unsigned *)(r->cq + r->p.cq_off.head), head + 1, __ATOMIC_RELEASE);
    return res;
}

/* Submits the SQE of ring_sqe and waits for its completion: its result (a negative errno on
 * failure), or -1000000 when io_uring_enter itself failed. */
static inline int ring_run(struct ring *r) {
    ring_publish(r);
    if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter");
        return -1000000;
    }
    return ring_reap(r);
}
