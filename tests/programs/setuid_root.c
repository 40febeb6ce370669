/* What a program does with a setuid-root file's privileges: setuid(0) and setgid(0) make the
 * real ids root too (the "ids raised" of a privilege escalation). Run as another user from a
 * root-owned setuid copy. Prints the ids before and after. Usage: setuid_root */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    printf("before: uid=%d euid=%d gid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid());
    int g = setgid(0);
    int u = setuid(0);
    printf("setgid=%d setuid=%d (%s)\n", g, u, (g < 0 || u < 0) ? strerror(errno) : "ok");
    printf("after: uid=%d euid=%d gid=%d egid=%d\n", getuid(), geteuid(), getgid(), getegid());
    return 0;
}
