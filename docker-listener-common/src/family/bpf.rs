//! `bpf`: bpf(2) calls that load or attach programs.
use super::CallHead;

/// `bpf_cmd` values reported (include/uapi/linux/bpf.h).
pub mod cmd {
    pub const PROG_LOAD: u32 = 5;
    pub const PROG_ATTACH: u32 = 8;
    pub const RAW_TRACEPOINT_OPEN: u32 = 17;
    pub const LINK_CREATE: u32 = 28;
}

/// Bytes of `bpf_attr.prog_name` (BPF_OBJ_NAME_LEN).
pub const PROG_NAME_CAP: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BpfRecord {
    pub call: CallHead,
    /// PROG_LOAD: `prog_type`, `insn_cnt`, `expected_attach_type`; PROG_ATTACH, LINK_CREATE:
    /// the attach type (0 otherwise).
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub attach_type: u32,
    /// The attributes could not be read (bad pointer): only the command is known.
    pub attr_unavailable: u32,
    pub prog_name: [u8; PROG_NAME_CAP],
}
