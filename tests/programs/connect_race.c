/* Races a stream connect with another thread, the same way every run: the connect blocks on a
 * listener of its own whose backlog is full, and while it waits the main thread
 *   family: rewrites the family in the connect's sockaddr, in memory, to AF_NETLINK (16), or
 *   swap:   puts another socket under the connect's descriptor (dup2), or
 *   inet:   (a TCP connect to 127.0.0.1:PORT) rewrites the destination in the connect's
 *           sockaddr, in memory, to 10.9.8.7:53 (nothing is sent there: the kernel copied the
 *           address at the call's start),
 * then accepts, which lets the connect through (a Unix one at once; a TCP one when its SYN,
 * dropped while the backlog was full, is sent again, a second later). The change is made once
 * the connecting thread is seen waiting in connect (its /proc/self/task/<tid>/syscall starts
 * with 42, connect's number). Prints the connect's result and whether it was still waiting
 * then (raced=1).
 * Usage: connect_race family|swap PATH, connect_race inet PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un a = {.sun_family = AF_UNIX};
static struct sockaddr_in a4 = {.sin_family = AF_INET};
static struct sockaddr *addr;
static socklen_t addr_len;
static int fd;
static volatile int result = -1000;
static volatile pid_t tid;

static void *connector(void *x) {
    (void)x;
    tid = gettid();
    result = connect(fd, addr, addr_len);
    return 0;
}

int main(int argc, char **argv) {
    int mode = argc == 3 ? argv[1][0] : 0;
    if (argc != 3 || (strcmp(argv[1], "family") != 0 && strcmp(argv[1], "swap") != 0 && strcmp(argv[1], "inet") != 0)) {
        fprintf(stderr, "usage: connect_race family|swap PATH, connect_race inet PORT\n");
        return 2;
    }
    int domain = mode == 'i' ? AF_INET : AF_UNIX;
    if (mode == 'i') {
        a4.sin_port = htons((unsigned short)atoi(argv[2]));
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr = (struct sockaddr *)&a4;
        addr_len = sizeof a4;
    } else {
        strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
        unlink(a.sun_path);
        addr = (struct sockaddr *)&a;
        addr_len = sizeof a;
    }
    int l = socket(domain, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* A Unix listener's queue holds one more than its backlog; a TCP one's accept queue too,
     * but with a backlog of 0 its first connect would need a SYN cookie. */
    int backlog = mode == 'i' ? 1 : 0;
    if (bind(l, addr, addr_len) != 0 || listen(l, backlog) != 0) {
        perror("listen");
        return 1;
    }
    /* The backlog, full: the next connect waits for an accept. */
    for (int i = 0; i <= backlog; i++) {
        int first = socket(domain, SOCK_STREAM, 0);
        if (connect(first, addr, addr_len) != 0) {
            perror("connect");
            return 1;
        }
    }
    fd = socket(domain, SOCK_STREAM, 0);
    pthread_t t;
    pthread_create(&t, 0, connector, 0);
    int waiting = 0;
    for (int i = 0; i < 1000 && !waiting; i++) {
        char path[64], buf[8] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
        FILE *f = tid ? fopen(path, "r") : 0;
        if (f) {
            waiting = fread(buf, 1, 3, f) == 3 && strncmp(buf, "42 ", 3) == 0;
            fclose(f);
        }
        if (!waiting) usleep(10000);
    }
    int raced = waiting && result == -1000;
    if (mode == 'f') {
        a.sun_family = 16;
    } else if (mode == 'i') {
        a4.sin_port = htons(53);
        a4.sin_addr.s_addr = inet_addr("10.9.8.7");
    } else {
        int other = socket(AF_UNIX, SOCK_STREAM, 0);
        dup2(other, fd);
    }
    int c1 = accept(l, 0, 0);
    pthread_join(t, 0);
    printf("connect=%d raced=%d\n", result, raced);
    close(c1);
    if (mode != 'i') unlink(a.sun_path);
    return result != 0 || !raced;
}
