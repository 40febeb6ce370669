/* open_calls.c for i386 (gcc -m32 -static): the same three opens through the 32-bit system
 * call ABI. */
#ifndef __i386__
#error "build with -m32"
#endif
#include "open_calls.c"
