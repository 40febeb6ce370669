//! `network` family: sends on IP sockets that today no other event shows. A send to port 53
//! (UDP or TCP) is a DNS query, with the head of its payload; a UDP send with an explicit
//! destination (sendto, sendmsg with a name: no connect) is a flow, the first time that socket
//! sends to that destination.
use super::CallHead;
use crate::SockAddr;

pub mod op {
    pub const WRITE: u32 = 1;
    pub const WRITEV: u32 = 2;
    pub const SENDTO: u32 = 3;
    pub const SENDMSG: u32 = 4;
    pub const SENDMMSG: u32 = 5;
}

/// What a record is (`NetRecord::what`).
pub mod what {
    /// To port 53: `payload` holds the head of the message.
    pub const DNS: u32 = 1;
    /// A UDP send with an explicit destination, the first from this socket to it.
    pub const FLOW: u32 = 2;
}

/// Bytes of a DNS message kept (a query's question fits: names are at most 255 bytes).
pub const PAYLOAD_CAP: usize = 512;

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Messages of one sendmmsg reported (glibc sends a name's A and AAAA queries in one call).
pub const MMSG_MAX: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetRecord {
    pub call: CallHead,
    /// `what` bits.
    pub what: u32,
    pub fd: i32,
    /// The socket's type (SOCK_DGRAM, SOCK_STREAM) and protocol (IPPROTO_UDP, IPPROTO_TCP).
    pub sock_type: u16,
    pub protocol: u16,
    /// sendmmsg: which message of the call (0-based).
    pub index: u32,
    /// The bytes the call was asked to send (this message's), and how many of them are in
    /// `payload`.
    pub len: u64,
    pub payload_len: u32,
    /// 1 when the destination was given with the call (sendto's or the message's name), 0 when
    /// it is the connected peer's.
    pub explicit: u32,
    /// Where it was sent, and the socket's own address.
    pub dst: SockAddr,
    pub src: SockAddr,
    pub payload: [u8; PAYLOAD_CAP],
}
