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

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    if (argv[1][0] == '/') {
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        strncpy(u.sun_path, argv[1], sizeof u.sun_path - 1);
        struct ring r;
        if (ring_setup(&r, 4) < 0) return 1;
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct io_uring_sqe *sqe = ring_sqe(&r);
        sqe->opcode = IORING_OP_CONNECT;
        sqe->fd = s;
        sqe->addr = (unsigned long)&u;
        sqe->off = sizeof u;
        int res = ring_run(&r);
        printf("io_uring unix connect: %s\n", res < 0 ? strerror(-res) : "ok");
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
    struct ring r;
    if (ring_setup(&r, 4) < 0) return 1;
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    struct io_uring_sqe *sqe = ring_sqe(&r);
    sqe->opcode = IORING_OP_CONNECT;
    sqe->fd = cli;
    sqe->addr = (unsigned long)&a;
    sqe->off = sizeof a;
    int res = ring_run(&r);
    if (res < 0) {
        fprintf(stderr, "io_uring connect: %s\n", res == -1000000 ? "io_uring_enter failed" : strerror(-res));
        return 1;
    }
    int acc = accept(srv, NULL, NULL);
    printf("connected through io_uring, accepted fd %d\n", acc);
    return acc < 0;
}
