/* by_handle.c for i386 (gcc -m32 -static): open_by_handle_at through the 32-bit system call
 * ABI. */
#ifndef __i386__
#error "build with -m32"
#endif
#include "by_handle.c"
