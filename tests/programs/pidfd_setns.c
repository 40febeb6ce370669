/* Joins a process's namespaces through a pidfd (pidfd_open(2), then setns(2) with the
 * CLONE_NEW* flags: no file of /proc/PID/ns opened, so the descriptor names no namespace).
 * Prints the result. Usage: pidfd_setns [PID [FLAGS [COMMAND ARG...]]] (PID: its parent's parent
 * unless given; FLAGS in hex: CLONE_NEWNET, 40000000, unless given; CLONE_NEWUTS is 4000000;
 * COMMAND, an absolute path, is executed by the same process after a setns that succeeded). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int main(int argc, char **argv) {
    if (argc > 3 && argv[3][0] != '/') {
        fprintf(stderr, "usage: pidfd_setns [PID [FLAGS [COMMAND ARG...]]]\n");
        return 2;
    }
    int pid = argc > 1 ? atoi(argv[1]) : 0;
    if (pid == 0) {
        /* The parent's parent, from the parent's status. */
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)getppid());
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "PPid: %d", &pid) == 1) break;
        if (f) fclose(f);
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        printf("pidfd_open=-1 (%s)\n", strerror(errno));
        return 1;
    }
    int r = setns(fd, argc >= 3 ? (int)strtol(argv[2], NULL, 16) : CLONE_NEWNET);
    printf("setns=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    if (r == 0 && argc > 3) {
        fflush(stdout);
        close(fd);
        execv(argv[3], argv + 3);
        printf("execv=-1 (%s)\n", strerror(errno));
        return 1;
    }
    return r != 0;
}
