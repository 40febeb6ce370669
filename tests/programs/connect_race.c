/* Races a Unix stream connect with another thread, the same way every run: the connect blocks
 * on a listener of its own whose backlog is full, and while it waits the main thread
 *   family: rewrites the family in the connect's sockaddr, in memory, to AF_NETLINK (16), or
 *   swap:   puts another socket under the connect's descriptor (dup2),
 * then accepts, which lets the connect through. The change is made once the connecting thread
 * is seen waiting in connect (its /proc/self/task/<tid>/syscall starts with 42, connect's
 * number). Prints the connect's result and whether it was still waiting then (raced=1).
 * Usage: connect_race family|swap PATH */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un a = {.sun_family = AF_UNIX};
static int fd;
static volatile int result = -1000;
static volatile pid_t tid;

static void *connector(void *x) {
    (void)x;
    tid = gettid();
    result = connect(fd, (struct sockaddr *)&a, sizeof a);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "family") != 0 && strcmp(argv[1], "swap") != 0)) {
        fprintf(stderr, "usage: connect_race family|swap PATH\n");
        return 2;
    }
    strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
    unlink(a.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 0) != 0) {
        perror("listen");
        return 1;
    }
    /* The backlog, full: the next connect waits for an accept. */
    int first = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(first, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
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
    if (argv[1][0] == 'f') {
        a.sun_family = 16;
    } else {
        int other = socket(AF_UNIX, SOCK_STREAM, 0);
        dup2(other, fd);
    }
    int c1 = accept(l, 0, 0);
    pthread_join(t, 0);
    printf("connect=%d raced=%d\n", result, raced);
    close(c1);
    unlink(a.sun_path);
    return result != 0 || !raced;
}
