/* Changes a file through a descriptor and an empty name (AT_EMPTY_PATH), as fchown(2) would:
 * opens PATH with O_PATH (which reads nothing), with `unlink` removes that name, then
 * fchownat(fd, "", 0, 0, AT_EMPTY_PATH). Prints the result. Usage: empty_path PATH [unlink] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: empty_path PATH [unlink]\n");
        return 2;
    }
    int fd = open(argv[1], O_PATH);
    if (fd < 0) {
        printf("open=-1 (%s)\n", strerror(errno));
        return 1;
    }
    if (argc == 3 && unlink(argv[1]) < 0) perror("unlink");
    int r = fchownat(fd, "", 0, 0, AT_EMPTY_PATH);
    printf("fchownat=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    return r != 0;
}
