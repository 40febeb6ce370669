/* A change hidden behind a container's ordinary io_uring traffic: `n` opens of PATH through a
 * ring (IORING_OP_OPENAT, each descriptor closed), as a file server makes them, then `k`
 * renames of A to B and back with rename(2), back to back, so that no budget refills between
 * them. Prints how many opens succeeded and how many renames did. No liburing (ring.h).
 * Usage: uring_flood N PATH K A B */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>

#include "ring.h"

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s N PATH K A B\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), k = atol(argv[3]);
    struct ring r;
    if (ring_setup(&r, 4) < 0) return 1;
    long opened = 0;
    for (long i = 0; i < n; i++) {
        ring_openat(&r, argv[2])->open_flags |= O_CLOEXEC;
        int fd = ring_run(&r);
        if (fd >= 0) {
            opened++;
            close(fd);
        }
    }
    long renamed = 0;
    for (long i = 0; i < k; i++)
        renamed += rename(i % 2 ? argv[5] : argv[4], i % 2 ? argv[4] : argv[5]) == 0;
    printf("opened=%ld renamed=%ld\n", opened, renamed);
    return 0;
}
