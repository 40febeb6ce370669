/* Socket calls and a failed exec through the 32-bit (ia32) system call ABI, the doors a static
 * i386 binary opens on an x86-64 host, where the syscalls:sys_enter_* tracepoints do not fire.
 * Built with gcc -m32 -static (the tests build every tests/programs/NAME_32.c that way).
 *
 *   compat_net socketcall PORT   bind, listen, connect, accept on 127.0.0.1:PORT through glibc,
 *                                which makes them with the socketcall(2) multiplexer
 *   compat_net direct PORT       the same with the direct ia32 socket system calls (359-364)
 *   compat_net exec PATH         execve(PATH), which fails
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __i386__
#error "build with -m32"
#endif

static int direct;

static int x_socket(int d, int t, int p) { return direct ? syscall(359, d, t, p) : socket(d, t, p); }
static int x_bind(int fd, struct sockaddr *a, socklen_t l) { return direct ? syscall(361, fd, a, l) : bind(fd, a, l); }
static int x_connect(int fd, struct sockaddr *a, socklen_t l) { return direct ? syscall(362, fd, a, l) : connect(fd, a, l); }
static int x_listen(int fd, int b) { return direct ? syscall(363, fd, b) : listen(fd, b); }
static int x_accept(int fd, struct sockaddr *a, socklen_t *l) { return direct ? syscall(364, fd, a, l, 0) : accept(fd, a, l); }

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s socketcall|direct PORT | exec PATH\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "exec") == 0) {
        char *args[] = {argv[2], "compat", NULL};
        execve(argv[2], args, NULL);
        perror("execve");
        return 0;
    }
    direct = strcmp(argv[1], "direct") == 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int srv = x_socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (srv < 0 || x_bind(srv, (struct sockaddr *)&a, sizeof a) < 0 || x_listen(srv, 8) < 0) {
        perror("socket/bind/listen");
        return 1;
    }
    int cli = x_socket(AF_INET, SOCK_STREAM, 0);
    if (cli < 0 || x_connect(cli, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int acc = x_accept(srv, (struct sockaddr *)&peer, &len);
    if (acc < 0) {
        perror("accept");
        return 1;
    }
    printf("%s: accepted a connection from port %d\n", argv[1], ntohs(peer.sin_port));
    return 0;
}
