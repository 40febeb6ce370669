//! `bpf` (`event.action`: `bpf-program-load`, `bpf-program-attach`): bpf(2) calls by a
//! container process that load or attach a program, refused ones included.
use std::borrow::Cow;

use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        bpf::{BpfRecord, cmd},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Detail, Family, Reported, text};
use crate::{
    ebpf::record::{RecordError, pod_ref},
    ecs::Kind,
};

pub const FAMILY: Family = Family {
    name: "bpf",
    kind: RecordKind::Bpf,
    enabled: |c| c.bpf,
    reported: Reported::AtExit(AtExit {
        switch: switch::BPF,
        decode,
        sees: "BPF program loads and attachments (bpf PROG_LOAD, PROG_ATTACH, RAW_TRACEPOINT_OPEN, LINK_CREATE)",
    }),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfCall {
    pub cmd: u32,
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub attach_type: u32,
    pub prog_name: String,
    pub attr_unavailable: bool,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<BpfRecord>(bytes)?;
    Ok(Detail::Bpf(BpfCall {
        cmd: head.op,
        prog_type: r.prog_type,
        insn_cnt: r.insn_cnt,
        attach_type: r.attach_type,
        prog_name: text(&r.prog_name, r.prog_name.len() as u32),
        attr_unavailable: r.attr_unavailable != 0,
    }))
}

/// `enum bpf_prog_type` (include/uapi/linux/bpf.h).
const PROG_TYPES: [&str; 33] = [
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
];

#[derive(Serialize)]
struct BpfOut<'a> {
    command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    program_type: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    program_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach_type: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    attributes_unavailable: bool,
}

impl BpfCall {
    pub fn kind(&self) -> Kind {
        let action = if self.cmd == cmd::PROG_LOAD { "bpf-program-load" } else { "bpf-program-attach" };
        Kind { kind: "event", category: "driver", types: &["start"], action, dataset: "docker_listener.kernel" }
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        let load = self.cmd == cmd::PROG_LOAD && !self.attr_unavailable;
        m.serialize_entry(
            "bpf",
            &BpfOut {
                command: match self.cmd {
                    cmd::PROG_LOAD => "BPF_PROG_LOAD",
                    cmd::PROG_ATTACH => "BPF_PROG_ATTACH",
                    cmd::RAW_TRACEPOINT_OPEN => "BPF_RAW_TRACEPOINT_OPEN",
                    _ => "BPF_LINK_CREATE",
                },
                program_type: load.then(|| {
                    PROG_TYPES
                        .get(self.prog_type as usize)
                        .map_or_else(|| Cow::Owned(self.prog_type.to_string()), |n| Cow::Borrowed(*n))
                }),
                program_name: (load && !self.prog_name.is_empty()).then_some(self.prog_name.as_str()),
                instructions: load.then_some(self.insn_cnt),
                attach_type: (self.cmd != cmd::RAW_TRACEPOINT_OPEN && !self.attr_unavailable)
                    .then_some(self.attach_type),
                attributes_unavailable: self.attr_unavailable,
            },
        )
    }
}
