/* Changes FILE by its name through the 32-bit (ia32) system call ABI: chmod(2) to 0604, then
 * chown(2) to its own ids (chown32). Built with gcc -m32 -static. Prints each result.
 * Usage: path_calls_32 FILE */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef __i386__
#error "build with -m32"
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: path_calls_32 FILE\n");
        return 2;
    }
    int r = chmod(argv[1], 0604);
    printf("chmod=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = chown(argv[1], getuid(), getgid());
    printf("chown=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    return 0;
}
