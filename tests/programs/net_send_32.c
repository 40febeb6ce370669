/* net_send.c for i386: the same sends through the 32-bit system call ABI. */
#include "net_send.c"
