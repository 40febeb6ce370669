/* A TCP connect made through io_uring (IORING_OP_CONNECT), which no connect(2) system call
 * carries: listens on 127.0.0.1:PORT with ordinary calls, connects to it through a ring, accepts.
 * No liburing (ring.h). With a path, connects a Unix stream socket to it through a ring instead
 * (no listener of its own: the Docker socket, say).
 * Usage: uring_connect PORT | uring_connect /PATH */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "ring.h"

/* Connects a new socket of `family` to `addr` through a ring (IORING_OP_CONNECT); returns its
 * result (-1000000 when the ring could not be set up or entered). */
static int ring_connect(int family, const void *addr, size_t len) {
    struct ring r;
    if (ring_setup(&r, 4) < 0) return -1000000;
    struct io_uring_sqe *sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_CONNECT;
    sqe->fd = socket(family, SOCK_STREAM, 0);
    sqe->addr = (unsigned long)addr;
    sqe->off = len;
    return ring_run(&r);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    if (argv[1][0] == '/') {
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        strncpy(u.sun_path, argv[1], sizeof u.sun_path - 1);
        int res = ring_connect(AF_UNIX, &u, sizeof u);
        printf("io_uring unix connect: %s\n", res == -1000000 ? "io_uring failed" : res < 0 ? strerror(-res) : "ok");
        return res != 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int srv = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0 || listen(srv, 8) < 0) {
        perror("bind/listen");
        return 1;
    }
    int res = ring_connect(AF_INET, &a, sizeof a);
    if (res < 0) {
        fprintf(stderr, "io_uring connect: %s\n", res == -1000000 ? "io_uring setup or enter failed" : strerror(-res));
        return 1;
    }
    int acc = accept(srv, NULL, NULL);
    printf("connected through io_uring, accepted fd %d\n", acc);
    return acc < 0;
}
