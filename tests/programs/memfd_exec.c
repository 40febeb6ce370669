/* Fileless execution, as malware does it: copies a program into a memfd named NAME and runs it
 * from there with fexecve (execveat(fd, "", AT_EMPTY_PATH)), so no file of it exists on any
 * filesystem. With NAME "-", runs PROGRAM itself through a descriptor (the path execve sees is
 * /dev/fd/N, whatever the file is).
 * Usage: memfd_exec NAME|- PROGRAM ARGV0 [ARGS...] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s NAME PROGRAM ARGV0 [ARGS...]\n", argv[0]);
        return 2;
    }
    int src = open(argv[2], O_RDONLY);
    if (strcmp(argv[1], "-") == 0) {
        fexecve(src, argv + 3, environ);
        perror("fexecve");
        return 1;
    }
    int mem = memfd_create(argv[1], 0);
    if (src < 0 || mem < 0) {
        perror("open/memfd_create");
        return 1;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0) {
        if (write(mem, buf, (size_t)n) != n) {
            perror("write");
            return 1;
        }
    }
    close(src);
    fexecve(mem, argv + 3, environ);
    perror("fexecve");
    return 1;
}
