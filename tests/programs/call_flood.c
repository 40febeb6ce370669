/* A flood of the exit-reported families' calls, as a container process trying to bury one
 * call among thousands: `n` unshare(CLONE_NEWNS) (refused in a default container) and `n`
 * opens of /etc/shadow, then one unshare(CLONE_NEWUSER) and one open of /etc/gshadow: calls of
 * another kind than the flood's. Prints how many opens succeeded and what the last two calls
 * returned. Usage: call_flood <n> */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    long refused = 0, opened = 0;
    for (long i = 0; i < n; i++)
        if (unshare(CLONE_NEWNS) != 0)
            refused++;
    for (long i = 0; i < n; i++) {
        int fd = open("/etc/shadow", O_RDONLY);
        if (fd >= 0) {
            opened++;
            close(fd);
        }
    }
    int user = unshare(CLONE_NEWUSER);
    int user_errno = errno;
    int fd = open("/etc/gshadow", O_RDONLY);
    printf("refused=%ld opened=%ld user=%d errno=%d gshadow=%d\n", refused, opened, user, user_errno, fd >= 0);
    return 0;
}
