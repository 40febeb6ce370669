/* Loads a two-instruction socket filter named "dl_probe" with bpf(BPF_PROG_LOAD): refused by
 * Docker's seccomp profile in a default container (EPERM), loaded in a privileged one. Prints
 * the result. Usage: bpf_load */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    struct bpf_insn insns[2] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insn_cnt = 2;
    attr.insns = (unsigned long)insns;
    attr.license = (unsigned long)"GPL";
    strncpy(attr.prog_name, "dl_probe", sizeof attr.prog_name - 1);
    long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
    printf("prog_load=%ld (%s)\n", fd, fd < 0 ? strerror(errno) : "ok");
    return 0;
}
