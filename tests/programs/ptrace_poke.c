#define _GNU_SOURCE
/* Takes hold of another process the way an injector does: PTRACE_ATTACH, a PTRACE_POKEDATA
 * (at an address that is not mapped: it fails, the request is what matters), PTRACE_DETACH,
 * then a process_vm_writev into it (to an unmapped address: EFAULT). Prints each result.
 * Usage: ptrace_poke PID [SECONDS]: then stays SECONDS (the caller still there when the agent
 * reads /proc). ptrace_poke PID kill: attaches, kills the target and ends at once (neither is
 * there when the agent reads /proc). ptrace_poke thread: forks a child with a second thread and
 * writes into the child by that thread's id (a thread's id names its process), prints
 * "child=PID thread=TID", stays 2 s and kills the child. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int tid_pipe[2];

static void *announce(void *unused) {
    (void)unused;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (write(tid_pipe[1], &tid, sizeof tid) != sizeof tid)
        _exit(1);
    for (;;)
        pause();
    return NULL;
}

static int into_a_thread(void) {
    if (pipe(tid_pipe) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, announce, NULL) != 0)
            _exit(1);
        for (;;)
            pause();
    }
    pid_t tid;
    if (read(tid_pipe[0], &tid, sizeof tid) != sizeof tid) {
        fprintf(stderr, "no thread id from the child\n");
        return 1;
    }
    char buf[4] = "abc";
    struct iovec local = {buf, sizeof buf}, remote = {(void *)8, sizeof buf};
    ssize_t n = process_vm_writev(tid, &local, 1, &remote, 1, 0);
    printf("child=%d thread=%d vm_writev=%zd (%s)\n", (int)child, (int)tid, n, n < 0 ? strerror(errno) : "ok");
    fflush(stdout);
    sleep(2);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "thread") == 0)
        return into_a_thread();
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: ptrace_poke PID [SECONDS]\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    printf("attach=%ld (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    if (argc == 3 && strcmp(argv[2], "kill") == 0) {
        kill(pid, SIGKILL);
        fflush(stdout);
        return r == 0 ? 0 : 1;
    }
    if (r == 0) {
        waitpid(pid, NULL, 0);
        r = ptrace(PTRACE_POKEDATA, pid, (void *)8, (void *)0x90909090);
        printf("poke=%ld (%s)\n", r, r < 0 ? strerror(errno) : "ok");
        ptrace(PTRACE_DETACH, pid, 0, 0);
    }
    char buf[4] = "abc";
    struct iovec local = {buf, sizeof buf}, remote = {(void *)8, sizeof buf};
    ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    printf("vm_writev=%zd (%s)\n", n, n < 0 ? strerror(errno) : "ok");
    fflush(stdout);
    if (argc == 3)
        sleep((unsigned)atoi(argv[2]));
    return 0;
}
