/* Connects a stream socket to a Unix socket path (the Docker socket, bind-mounted in) and
 * closes it. Prints the result.
 * Usage: unix_connect PATH
 *        unix_connect --own PATH [WAIT]: binds a listener of its own at PATH first (as a
 *        runtime run inside the container, docker-in-docker's dockerd, does), then, once the
 *        file WAIT exists if given, connects to it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int own = (argc == 3 || argc == 4) && strcmp(argv[1], "--own") == 0;
    if (argc != 2 && !own) {
        fprintf(stderr, "usage: unix_connect [--own] PATH [WAIT]\n");
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
    if (l >= 0) {
        close(l);
        unlink(a.sun_path);
    }
    return r != 0;
}
