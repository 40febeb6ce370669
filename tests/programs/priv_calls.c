/* The privilege changes beyond the set*id family, as a container's root makes them: the
 * filesystem uid (setfsuid, which returns the previous one), the supplementary groups
 * (setgroups), the bounding set (prctl PR_CAPBSET_DROP: allowed with CAP_SETPCAP, which Docker
 * gives), an ambient capability (PR_CAP_AMBIENT_RAISE: refused, the inheritable set is empty in
 * a default container), a change of the executable file the kernel names for the process
 * (PR_SET_MM_EXE_FILE to /bin/busybox: refused, it takes CAP_SYS_RESOURCE), and a thread name
 * (PR_SET_NAME: not a privilege change, not reported).
 * Usage: priv_calls */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(void) {
    setfsuid(0);
    gid_t groups[2] = {0, 10};
    int g = setgroups(2, groups);
    int drop = prctl(PR_CAPBSET_DROP, 18 /* CAP_SYS_CHROOT */, 0, 0, 0);
    int amb = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 13 /* CAP_NET_RAW */, 0, 0);
    int exe = open("/bin/busybox", O_RDONLY);
    int mm = prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, exe, 0, 0);
    prctl(PR_SET_NAME, "privcalls", 0, 0, 0);
    printf("setgroups=%d capbset_drop=%d ambient_raise=%d set_mm_exe_file=%d\n", g, drop, amb, mm);
    return 0;
}
