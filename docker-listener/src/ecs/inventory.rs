//! Start-up inventory events (`event.kind: state`): what already ran in the containers when the
//! agent started, and so produced no exec or socket event: one `process-running` event per
//! process and one `socket-listening` event per listening TCP socket or bound UDP socket.
//! They carry the same fields as exec and socket events, read from /proc.
use serde::{Serialize, ser::SerializeMap};

use super::{
    Decimal, ErrorOut, IdOut, JoinedArgs, Kind, Lineup, ProcRef, Shown, ThreadOut,
    parts::{FileOut, write_args_flags},
};
use crate::ebpf::record::{Args, Endpoint, ExeFile};

#[derive(Debug, Clone)]
pub enum Inventory {
    Running(Box<Running>),
    Listening {
        process: ProcRef,
        /// "tcp" or "udp".
        transport: &'static str,
        server: Endpoint,
    },
}

/// A process that was running: its exec event's fields, from /proc.
#[derive(Debug, Clone)]
pub struct Running {
    pub lineup: Lineup,
    pub uid: u32,
    pub gid: u32,
    pub args: Args,
    pub exe: Option<ExeFile>,
}

#[derive(Serialize)]
struct RunningOut<'a> {
    pid: u32,
    entity_id: crate::procs::EntityId,
    executable: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    applet: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    applet_hidden: bool,
    args: &'a [String],
    args_count: usize,
    command_line: JoinedArgs<'a>,
    user: IdOut,
    group: IdOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a ProcRef>,
    entry_leader: &'a ProcRef,
}

#[derive(Serialize)]
struct ExecOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileOut>,
}

#[derive(Serialize)]
struct ServerOut<'a> {
    ip: Shown<&'a std::net::IpAddr>,
    port: u16,
}

impl Inventory {
    pub fn kind(&self) -> Kind {
        match self {
            Inventory::Running(_) => Kind {
                kind: "state",
                category: "process",
                types: &["info"],
                action: "process-running",
                dataset: "docker_listener.process",
            },
            Inventory::Listening { .. } => Kind {
                kind: "state",
                category: "network",
                types: &["info"],
                action: "socket-listening",
                dataset: "docker_listener.network",
            },
        }
    }

    pub(crate) fn write_top<M: SerializeMap>(
        &self,
        _thread: ThreadOut,
        m: &mut M,
    ) -> Result<Option<ErrorOut>, M::Error> {
        match self {
            Inventory::Running(r) => {
                let Running { lineup, uid, gid, args, .. } = r.as_ref();
                let p = &lineup.process;
                m.serialize_entry(
                    "process",
                    &RunningOut {
                        pid: p.pid,
                        entity_id: p.entity_id,
                        executable: p.executable.as_deref().unwrap_or(""),
                        name: p.name.as_deref().unwrap_or(""),
                        applet: p.applet.as_deref(),
                        applet_hidden: p.applet_hidden,
                        args: &args.args,
                        args_count: args.args.len(),
                        command_line: JoinedArgs(&args.args),
                        user: IdOut { id: Decimal(*uid) },
                        group: IdOut { id: Decimal(*gid) },
                        parent: lineup.parent.as_ref(),
                        entry_leader: &lineup.entry_leader,
                    },
                )?;
            }
            Inventory::Listening { process, transport, server } => {
                m.serialize_entry("process", process)?;
                if let Endpoint::Ip(ip, port) = server {
                    m.serialize_entry("server", &ServerOut { ip: Shown(ip), port: *port })?;
                    let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
                    m.serialize_entry("network", &serde_json::json!({"transport": transport, "type": family}))?;
                }
            }
        }
        Ok(None)
    }

    pub(crate) fn write_listener<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("inventory", &true)?;
        if let Inventory::Running(r) = self {
            let Running { lineup, args, exe, .. } = r.as_ref();
            m.serialize_entry("ancestors", &lineup.ancestors)?;
            m.serialize_entry("exec", &ExecOut { file: exe.as_ref().map(FileOut::of) })?;
            write_args_flags(args, m)?;
        }
        Ok(())
    }
}
