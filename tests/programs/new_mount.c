/* A mount made without mount(2): the mount API of Linux 5.2 and 5.12, each step called whatever
 * the previous one returned (in a default container seccomp refuses them all, and every
 * attempt is the event). Mounts a cgroup v1 hierarchy's source "cgroup" (the release_agent
 * escape's first step), clones the tree at /, and asks / to be made writable.
 * Usage: new_mount TARGET */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_fsopen
#define SYS_open_tree 428
#define SYS_move_mount 429
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#define SYS_fspick 433
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

int main(int argc, char **argv) {
    const char *target = argc > 1 ? argv[1] : "/mnt";
    long fs = syscall(SYS_fsopen, "cgroup", 0);
    syscall(SYS_fsconfig, (int)fs, 1 /* FSCONFIG_SET_STRING */, "source", "/dev/sda1", 0);
    syscall(SYS_fsconfig, (int)fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0);
    long mnt = syscall(SYS_fsmount, (int)fs, 0, 8 /* MOUNT_ATTR_NOEXEC */);
    syscall(SYS_move_mount, (int)mnt, "", AT_FDCWD, target, 4 /* MOVE_MOUNT_F_EMPTY_PATH */);
    syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */ | 0x8000 /* AT_RECURSIVE */);
    syscall(SYS_fspick, AT_FDCWD, "/", 0);
    struct mount_attr_ attr = {0, 1 /* MOUNT_ATTR_RDONLY */, 0, 0};
    syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof attr);
    printf("fsopen=%ld fsmount=%ld\n", fs, mnt);
    return 0;
}
