/* unix_connect (unix_connect.c) built for i386: its bind and connect are 32-bit system calls,
 * seen at their exit only, whose socket file is never read (another thread's dup2 during the
 * call could have put another socket under the descriptor). */
#include "unix_connect.c"
