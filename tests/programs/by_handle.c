/* open_by_handle_at(2), the "shocker" container escape's call, and name_to_handle_at(2) to make
 * its handle. Built as is and, through by_handle_32.c, for i386 (the 32-bit system call ABI).
 *   by_handle name PATH                  prints PATH's handle: "TYPE HEX" (run on the host)
 *   by_handle open MOUNT_FILE TYPE HEX   opens the handle's file through MOUNT_FILE's
 *                                        filesystem, prints the result and the file's first line */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct handle {
    unsigned int bytes;
    int type;
    unsigned char f[128];
};

int main(int argc, char **argv) {
    struct handle h;
    memset(&h, 0, sizeof h);
    if (argc == 3 && strcmp(argv[1], "name") == 0) {
        int mount_id;
        h.bytes = sizeof h.f;
        if (syscall(SYS_name_to_handle_at, AT_FDCWD, argv[2], &h, &mount_id, 0) != 0) {
            perror("name_to_handle_at");
            return 1;
        }
        printf("%d ", h.type);
        for (unsigned i = 0; i < h.bytes; i++) printf("%02x", h.f[i]);
        printf("\n");
        return 0;
    }
    if (argc != 5 || strcmp(argv[1], "open") != 0) {
        fprintf(stderr, "usage: by_handle name PATH | by_handle open MOUNT_FILE TYPE HEX\n");
        return 2;
    }
    int mount_fd = open(argv[2], O_RDONLY);
    if (mount_fd < 0) {
        perror(argv[2]);
        return 1;
    }
    h.type = atoi(argv[3]);
    const char *hex = argv[4];
    while (hex[0] && hex[1] && h.bytes < sizeof h.f) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        h.f[h.bytes++] = (unsigned char)v;
        hex += 2;
    }
    long fd = syscall(SYS_open_by_handle_at, mount_fd, &h, O_RDONLY);
    printf("open_by_handle_at=%ld (%s)\n", fd, fd < 0 ? strerror(errno) : "ok");
    if (fd >= 0) {
        char line[256] = {0};
        ssize_t n = read((int)fd, line, sizeof line - 1);
        if (n > 0) printf("read: %.*s", (int)strcspn(line, "\n"), line);
        printf("\n");
    }
    return 0;
}
