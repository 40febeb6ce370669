//! `privilege-change` (`event.action`: `setuid`, `setgid`, `setreuid`, `setregid`,
//! `setresuid`, `setresgid`, `capset`): a container process changed its ids or capabilities.
//! The event says what was asked, what the process had before (as the agent last saw it: at
//! its exec or its previous change; absent when the agent had not seen it), and what the kernel
//! left it with; `raised` when it gained: a real, effective or saved id of root it did not have,
//! or capabilities it did not have. A prctl that changes the executable file the kernel names
//! for the process (`PR_SET_MM`) is one too: masquerading as another program, a runtime binary
//! whose calls would pass for the runtime's; it takes CAP_SYS_RESOURCE (`PR_SET_MM_EXE_FILE`)
//! or CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN in the caller's user namespace (`PR_SET_MM_MAP`),
//! and is reported tried or done.
use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        cred::{CredRecord, Creds, op},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Context, Detail, Family, Reported};
use crate::{
    ebpf::record::{RecordError, pod_ref},
    ecs::Kind,
};

pub const FAMILY: Family = Family {
    name: "privilege-change",
    kind: RecordKind::Privilege,
    enabled: |c| c.privilege,
    reported: Reported::AtExit(AtExit {
        switch: switch::PRIVILEGE,
        decode,
        sees: "privilege changes (setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid, setfsgid, \
           setgroups, capset, prctl's capability options and its changes of the executable file)",
    }),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredChange {
    pub op: u32,
    pub requested: [u32; 3],
    /// After the call; `None` when the kernel's credentials could not be read.
    pub after: Option<Creds>,
    /// Before the call, as the agent last saw the process.
    pub before: Option<Creds>,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<CredRecord>(bytes)?;
    Ok(Detail::Privilege(CredChange {
        op: head.op,
        requested: r.requested,
        after: (r.creds_unavailable == 0).then_some(r.creds),
        before: None,
    }))
}

/// Whether `after` holds a privilege `before` did not: a real, effective or saved user or group
/// id that became root's, or a capability (effective or permitted) it did not have.
pub fn raised(before: &Creds, after: &Creds) -> bool {
    let became_root = |b: u32, a: u32| a == 0 && b != 0;
    became_root(before.uid, after.uid)
        || became_root(before.euid, after.euid)
        || became_root(before.suid, after.suid)
        || became_root(before.gid, after.gid)
        || became_root(before.egid, after.egid)
        || became_root(before.sgid, after.sgid)
        || became_root(before.fsuid, after.fsuid)
        || became_root(before.fsgid, after.fsgid)
        || after.cap_effective & !before.cap_effective != 0
        || after.cap_permitted & !before.cap_permitted != 0
}

/// Credentials as events show them.
#[derive(Serialize)]
pub(crate) struct CredsOut {
    uid: u32,
    euid: u32,
    suid: u32,
    fsuid: u32,
    gid: u32,
    egid: u32,
    sgid: u32,
    fsgid: u32,
    cap_effective: String,
    cap_permitted: String,
}

impl CredsOut {
    pub fn of(c: &Creds) -> CredsOut {
        CredsOut {
            uid: c.uid,
            euid: c.euid,
            suid: c.suid,
            fsuid: c.fsuid,
            gid: c.gid,
            egid: c.egid,
            sgid: c.sgid,
            fsgid: c.fsgid,
            cap_effective: format!("0x{:x}", c.cap_effective),
            cap_permitted: format!("0x{:x}", c.cap_permitted),
        }
    }
}

impl CredChange {
    /// The process's credentials before this call: the table's (its exec, its last change);
    /// then the table learns the new ones.
    pub fn resolve(&mut self, tgid: u32, ctx: &Context<'_>) {
        self.before = ctx.procs.creds(tgid);
    }

    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::SETUID => "setuid",
            op::SETGID => "setgid",
            op::SETREUID => "setreuid",
            op::SETREGID => "setregid",
            op::SETRESUID => "setresuid",
            op::SETRESGID => "setresgid",
            op::SETFSUID => "setfsuid",
            op::SETFSGID => "setfsgid",
            op::SETGROUPS => "setgroups",
            op::PRCTL => "prctl",
            _ => "capset",
        }
    }

    pub fn kind(&self) -> Kind {
        Kind {
            kind: "event",
            category: "process",
            types: &["change"],
            action: self.syscall(),
            dataset: "docker_listener.privilege",
        }
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        #[derive(Serialize)]
        struct Out {
            requested: Requested,
            #[serde(skip_serializing_if = "Option::is_none")]
            before: Option<CredsOut>,
            #[serde(skip_serializing_if = "Option::is_none")]
            after: Option<CredsOut>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            raised: bool,
        }
        #[derive(Serialize, Default)]
        struct Requested {
            #[serde(skip_serializing_if = "Option::is_none")]
            real: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            effective: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            saved: Option<u32>,
            /// capset: the sets asked for (low 32 bits) and the target pid (0: itself).
            #[serde(skip_serializing_if = "Option::is_none")]
            cap_effective: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cap_permitted: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pid: Option<u32>,
            /// setfsuid, setfsgid: the filesystem id.
            #[serde(skip_serializing_if = "Option::is_none")]
            filesystem: Option<u32>,
            /// setgroups: how many groups, and the first.
            #[serde(skip_serializing_if = "Option::is_none")]
            groups_count: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            first_group: Option<u32>,
            /// prctl: the option, and what it names.
            #[serde(skip_serializing_if = "Option::is_none")]
            option: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            operation: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            capability: Option<u32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            value: Option<String>,
            /// PR_SET_MM_EXE_FILE: the descriptor of the file asked for.
            #[serde(skip_serializing_if = "Option::is_none")]
            fd: Option<i32>,
        }
        let given = |v: u32| (v != u32::MAX).then_some(v);
        let [a, b, c] = self.requested;
        use docker_listener_common::family::cred::prctl_option as pr;
        let requested = match self.op {
            op::CAPSET => Requested {
                cap_effective: Some(format!("0x{a:x}")),
                cap_permitted: Some(format!("0x{b:x}")),
                pid: Some(c),
                ..Requested::default()
            },
            // set[ug]id(id): the effective id (and all three for a privileged caller).
            op::SETUID | op::SETGID => Requested { effective: given(a), ..Requested::default() },
            op::SETFSUID | op::SETFSGID => Requested { filesystem: given(a), ..Requested::default() },
            op::SETGROUPS => {
                Requested { groups_count: Some(a), first_group: (a > 0).then_some(b), ..Requested::default() }
            }
            op::PRCTL => match u64::from(a) {
                pr::CAPBSET_DROP => {
                    Requested { option: Some("PR_CAPBSET_DROP"), capability: Some(b), ..Requested::default() }
                }
                pr::CAP_AMBIENT => Requested {
                    option: Some("PR_CAP_AMBIENT"),
                    operation: Some(match b {
                        2 => "PR_CAP_AMBIENT_RAISE",
                        3 => "PR_CAP_AMBIENT_LOWER",
                        _ => "PR_CAP_AMBIENT_CLEAR_ALL",
                    }),
                    capability: (b != 4).then_some(c),
                    ..Requested::default()
                },
                pr::SET_KEEPCAPS => {
                    Requested { option: Some("PR_SET_KEEPCAPS"), value: Some(b.to_string()), ..Requested::default() }
                }
                // The executable file changed: to the file of descriptor `c` (EXE_FILE), or
                // as a layout's `exe_fd` says (MAP: `c` is a pointer's low half, not shown).
                pr::SET_MM => {
                    let exe_file = u64::from(b) == pr::MM_EXE_FILE;
                    Requested {
                        option: Some("PR_SET_MM"),
                        operation: Some(if exe_file { "PR_SET_MM_EXE_FILE" } else { "PR_SET_MM_MAP" }),
                        fd: exe_file.then_some(c as i32),
                        ..Requested::default()
                    }
                }
                _ => Requested {
                    option: Some("PR_SET_SECUREBITS"),
                    value: Some(format!("0x{b:x}")),
                    ..Requested::default()
                },
            },
            _ => Requested { real: given(a), effective: given(b), saved: given(c), ..Requested::default() },
        };
        let raised = matches!((&self.before, &self.after), (Some(b), Some(a)) if raised(b, a));
        m.serialize_entry(
            "privilege",
            &Out {
                requested,
                before: self.before.as_ref().map(CredsOut::of),
                after: self.after.as_ref().map(CredsOut::of),
                raised,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(uid: u32, euid: u32, gid: u32, caps: u64) -> Creds {
        Creds {
            uid,
            euid,
            suid: euid,
            fsuid: euid,
            gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            cap_effective: caps,
            cap_permitted: caps,
        }
    }

    #[test]
    fn raised_means_a_root_id_or_a_capability_gained() {
        // A setuid-root program making its real id root.
        assert!(raised(&creds(1000, 0, 1000, 0x1ff), &creds(0, 0, 1000, 0x1ff)));
        // Its setgid(0).
        assert!(raised(&creds(1000, 0, 1000, 0x1ff), &creds(1000, 0, 0, 0x1ff)));
        // A capability gained.
        assert!(raised(&creds(1000, 1000, 1000, 0), &creds(1000, 1000, 1000, 1 << 21)));
        // Lowering: root to a user, capabilities dropped.
        assert!(!raised(&creds(0, 0, 0, 0x1ff), &creds(1000, 1000, 1000, 0)));
        assert!(!raised(&creds(0, 0, 0, 0x1ff), &creds(0, 0, 0, 0x3)));
        assert!(!raised(&creds(5, 5, 5, 0), &creds(5, 5, 5, 0)));
    }

    /// What a privilege change's event says it asked for.
    fn requested(op: u32, requested: [u32; 3]) -> serde_json::Value {
        struct Event(CredChange);
        impl Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                self.0.write(&mut m)?;
                m.end()
            }
        }
        let change = CredChange { op, requested, after: None, before: None };
        serde_json::to_value(Event(change)).unwrap()["privilege"]["requested"].clone()
    }

    #[test]
    fn a_change_of_the_executable_file_is_reported_with_its_descriptor() {
        use docker_listener_common::family::cred::prctl_option::{MM_EXE_FILE, MM_MAP, SET_MM, reported};
        // The kernel program's filter: the two ways to change the executable file; not the
        // other layout fields (PR_SET_MM_ARG_START...), nor a thread name (PR_SET_NAME).
        assert!(reported(SET_MM, MM_EXE_FILE) && reported(SET_MM, MM_MAP));
        assert!(!reported(SET_MM, 8) && !reported(15, 0));
        // The kernel reads the operation as an int: an upper half set changes nothing.
        assert!(reported(SET_MM, 1 << 32 | MM_EXE_FILE));
        assert_eq!(
            requested(op::PRCTL, [35, 13, 5]),
            serde_json::json!({"option": "PR_SET_MM", "operation": "PR_SET_MM_EXE_FILE", "fd": 5})
        );
        assert_eq!(
            requested(op::PRCTL, [35, 14, 0xdead_b000]),
            serde_json::json!({"option": "PR_SET_MM", "operation": "PR_SET_MM_MAP"})
        );
        assert_eq!(requested(op::PRCTL, [8, 1, 0]), serde_json::json!({"option": "PR_SET_KEEPCAPS", "value": "1"}));
    }
}
