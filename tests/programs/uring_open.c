/* Opens PATH through io_uring (IORING_OP_OPENAT, then IORING_OP_OPENAT2), which no open system
 * call carries, and reads from each descriptor. No liburing: the raw io_uring_setup and
 * io_uring_enter calls and the rings mapped by hand. Prints each result.
 * Usage: uring_open PATH */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct io_uring_params p;
static char *sq, *cq;
static struct io_uring_sqe *sqes;
static int ring;

/* Submits one SQE made by `fill` and waits for its completion: its result. */
static int submit(void (*fill)(struct io_uring_sqe *, const char *), const char *path) {
    unsigned tail = *(unsigned *)(sq + p.sq_off.tail);
    unsigned index = tail & *(unsigned *)(sq + p.sq_off.ring_mask);
    struct io_uring_sqe *sqe = &sqes[index];
    memset(sqe, 0, sizeof *sqe);
    fill(sqe, path);
    ((unsigned *)(sq + p.sq_off.array))[index] = index;
    __atomic_store_n((unsigned *)(sq + p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter");
        return -1;
    }
    unsigned head = __atomic_load_n((unsigned *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
    int res = ((struct io_uring_cqe *)(cq + p.cq_off.cqes))[head & *(unsigned *)(cq + p.cq_off.ring_mask)].res;
    __atomic_store_n((unsigned *)(cq + p.cq_off.head), head + 1, __ATOMIC_RELEASE);
    return res;
}

static void fill_openat(struct io_uring_sqe *sqe, const char *path) {
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)path;
    sqe->open_flags = O_RDONLY;
}

static struct open_how how = {.flags = O_RDONLY};

static void fill_openat2(struct io_uring_sqe *sqe, const char *path) {
    sqe->opcode = IORING_OP_OPENAT2;
    sqe->fd = AT_FDCWD;
    sqe->addr = (unsigned long)path;
    sqe->addr2 = (unsigned long)&how;
    sqe->len = sizeof how;
}

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
    ring = syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0) {
        perror("io_uring_setup");
        return 1;
    }
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
    sq = mmap(0, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
    cq = (p.features & IORING_FEAT_SINGLE_MMAP)
             ? sq
             : mmap(0, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
    sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    report("IORING_OP_OPENAT", submit(fill_openat, argv[1]));
    report("IORING_OP_OPENAT2", submit(fill_openat2, argv[1]));
    return 0;
}
