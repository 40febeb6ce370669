//! The socket family's record: connect, bind, listen, accept and the creation of a raw or packet
//! socket (their system calls' tracepoints, the 32-bit ABI's at the system call's exit, and a
//! TCP connect made without connect(2) by its state change).
use crate::{RecordHeader, SockAddr, UNIX_PATH_CAP};

/// Socket operations of a [`SocketRecord`].
pub mod sock_op {
    pub const CONNECT: u32 = 1;
    pub const BIND: u32 = 2;
    pub const LISTEN: u32 = 3;
    pub const ACCEPT: u32 = 4;
    /// socket(2) creating a raw (SOCK_RAW) or packet (AF_PACKET) socket: `addr.family` is the
    /// domain, `sock_type` and `protocol` the arguments, `ret` the new descriptor.
    pub const SOCKET: u32 = 5;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SocketRecord {
    pub header: RecordHeader,
    /// A `sock_op` value.
    pub op: u32,
    /// The socket's file descriptor (for accept: the listening one).
    pub fd: i32,
    /// The syscall's return value (accept, socket: the new fd; others: 0 or -errno).
    pub ret: i64,
    pub start_ns: u64,
    /// The caller's `self_exec_id`: which image of the process made the call.
    pub exec_id: u64,
    /// `socket->type` (SOCK_STREAM...), `sk->sk_protocol` (IPPROTO_TCP...), 0 when unknown.
    pub sock_type: u16,
    pub protocol: u16,
    pub flags: u32,
    /// listen's backlog.
    pub backlog: i32,
    pub unix_path_len: u32,
    /// The address the syscall named (connect: the destination, bind: the address bound,
    /// accept: the peer), or for listen the bound address.
    pub addr: SockAddr,
    /// The socket's own address from the kernel after the call (connect: the source).
    pub local: SockAddr,
    /// AF_UNIX: the path (abstract names start with a NUL).
    pub unix_path: [u8; UNIX_PATH_CAP],
    /// AF_UNIX connect that succeeded: the address the socket reached was bound to (its
    /// listener's `bind` name, as `unix_path`), whatever name the caller gave; 0 bytes when
    /// unknown or unnamed.
    pub peer_path_len: u32,
    pub peer_path: [u8; UNIX_PATH_CAP],
    /// The caller's executable as the kernel has it (`mm->exe_file`): device (the kernel's
    /// dev_t) and inode, 0 when unknown; tells the image that made the call when the agent
    /// meets the process only later, from /proc (as `CallHead::exe_ino`).
    pub exe_dev: u32,
    pub exe_ino: u64,
    /// AF_UNIX, a call that succeeded: the socket file (`unix_sock.path`'s inode: device, the
    /// kernel's dev_t, and inode number) of a connect's listener, or a bind's own, which no
    /// name given to it can change; 0 when unknown, abstract or unnamed.
    pub unix_dev: u32,
    pub unix_pad: u32,
    pub unix_ino: u64,
}
