/* thread_exec PROGRAM [ARG...]: forks; the parent exits at once (the child is handed to the
 * container's init); in the child, the main thread ends (pthread_exit) and a second thread, a
 * moment later, execs PROGRAM. Before Linux 6.16 the kernel's exit tracepoint does not say
 * whether an exit ends the process, and the main thread's exit looks like the process's: an
 * agent that took it so would lose the process and name init as the exec's parent. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static char **args;

static void *run(void *unused) {
    (void)unused;
    usleep(300 * 1000);
    execv(args[0], args);
    perror("execv");
    _exit(127);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: thread_exec PROGRAM [ARG...]\n");
        return 2;
    }
    args = argv + 1;
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child > 0)
        return 0;
    pthread_t t;
    if (pthread_create(&t, NULL, run, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    pthread_exit(NULL);
}
