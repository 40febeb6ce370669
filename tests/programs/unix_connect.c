/* Connects a stream socket to a Unix socket path (the Docker socket, bind-mounted in) and
 * closes it. Prints the result.
 * Usage: unix_connect PATH
 *        unix_connect --own PATH [WAIT]: binds a listener of its own at PATH first (as a
 *        runtime run inside the container, docker-in-docker's dockerd, does), then, once the
 *        file WAIT exists if given, connects to it.
 *        unix_connect --drain N PATH: first binds N listeners of its own (/tmp/drain-<i>, all
 *        kept open, so each is another listener to the kernel) and connects once to each, as
 *        one would to spend the budget a connect to a new listener is sent on; then connects
 *        to PATH. Prints how many of the N connects succeeded.
 *        unix_connect --drain-nested N PATH: the same, but the connects are made by a child in
 *        a pid namespace of its own (unshare(CLONE_NEWPID): CAP_SYS_ADMIN), one level below
 *        the listeners' process. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_un drain_name(int i) {
    struct sockaddr_un d = {.sun_family = AF_UNIX};
    snprintf(d.sun_path, sizeof d.sun_path, "/tmp/drain-%d", i);
    return d;
}

/* Binds n listeners, all kept open; 0 when all were made. */
static int listeners(int n) {
    for (int i = 0; i < n; i++) {
        struct sockaddr_un d = drain_name(i);
        unlink(d.sun_path);
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        if (l < 0 || bind(l, (struct sockaddr *)&d, sizeof d) != 0 || listen(l, 1) != 0) {
            printf("drain listen %d=%s\n", i, strerror(errno));
            return 1;
        }
    }
    return 0;
}

/* Connects once to each of the n listeners; how many connects succeeded. */
static int connects(int n) {
    int ok = 0;
    for (int i = 0; i < n; i++) {
        struct sockaddr_un d = drain_name(i);
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        ok += connect(c, (struct sockaddr *)&d, sizeof d) == 0;
        close(c);
    }
    return ok;
}

int main(int argc, char **argv) {
    int nested = argc == 4 && strcmp(argv[1], "--drain-nested") == 0;
    /* (nested: from here on, this is the child in the pid namespace of its own.) */
    if (argc == 4 && (nested || strcmp(argv[1], "--drain") == 0)) {
        int n = atoi(argv[2]);
        if (listeners(n) != 0)
            return 1;
        if (nested) {
            if (unshare(CLONE_NEWPID) != 0) {
                printf("unshare=%s\n", strerror(errno));
                return 1;
            }
            fflush(stdout);
            pid_t child = fork();
            if (child != 0) {
                int status = 1;
                waitpid(child, &status, 0);
                return child < 0 || !WIFEXITED(status) ? 1 : WEXITSTATUS(status);
            }
            printf("nested pid=%d\n", getpid());
        }
        printf("drained=%d\n", connects(n));
        argv += 2;
        argc -= 2;
    }
    int own = (argc == 3 || argc == 4) && strcmp(argv[1], "--own") == 0;
    if (argc != 2 && !own) {
        fprintf(stderr, "usage: unix_connect [--own] PATH [WAIT] | --drain N PATH\n");
        return 2;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[own ? 2 : 1], sizeof a.sun_path - 1);
    int l = -1;
    if (own) {
        unlink(a.sun_path);
        l = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0) {
            printf("listen=%s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; argc == 4 && access(argv[3], F_OK) != 0 && i < 1200; i++)
            usleep(50000);
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    close(s);
    /* (The nested child's fork is held back with the drain: it stays a while, so the agent
     * finds its executable in /proc for the connect's event.) */
    if (nested)
        sleep(2);
    if (l >= 0) {
        close(l);
        unlink(a.sun_path);
    }
    return r != 0;
}
