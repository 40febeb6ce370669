/* Connects a stream socket to a Unix socket path (the Docker socket, bind-mounted in) and
 * closes it. Prints the result. Usage: unix_connect PATH */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: unix_connect PATH\n");
        return 2;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("connect=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    close(s);
    return r != 0;
}
