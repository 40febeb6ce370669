/* Namespace, mount, module and credential calls through the 32-bit (ia32) system call ABI:
 * unshare(2) (CLONE_NEWNS), mount(2) of a tmpfs on TARGET, chroot("/"), delete_module(NAME),
 * the 16-bit setresuid (164) asking to change nothing (-1 is 0xffff there) and the 32-bit-id
 * setgid (214) to the group it has. Built with gcc -m32 -static. Prints each result.
 * Usage: compat_calls_32 TARGET NAME */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __i386__
#error "build with -m32"
#endif

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: compat_calls_32 TARGET NAME\n");
        return 2;
    }
    int r = unshare(CLONE_NEWNS);
    printf("unshare=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = mount("none", argv[1], "tmpfs", 0, NULL);
    printf("mount=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = chroot("/");
    printf("chroot=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = (int)syscall(SYS_delete_module, argv[2], 0);
    printf("delete_module=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = (int)syscall(164, 0xffff, 0xffff, 0xffff);
    printf("setresuid16=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    r = (int)syscall(214, getgid());
    printf("setgid32=%d (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    return 0;
}
