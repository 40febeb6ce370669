//! `kernel-module` (`event.action`: `module-load`, `module-unload`): init_module,
//! finit_module and delete_module by a container process, refused ones included.
use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        kmod::{KernelModuleRecord, op},
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
    name: "kernel-module",
    kind: RecordKind::KernelModule,
    enabled: |c| c.kernel_module,
    reported: Reported::AtExit(AtExit {
        switch: switch::KERNEL_MODULE,
        decode,
        sees: "kernel module loads and unloads (init_module, finit_module, delete_module)",
    }),
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Module {
    #[serde(skip)]
    pub op: u32,
    /// delete_module: the module's name; finit_module: the file's name (from the descriptor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_bytes: Option<u32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub params: String,
    pub flags: u32,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<KernelModuleRecord>(bytes)?;
    let name = text(&r.name, r.name_len);
    let op = head.op;
    Ok(Detail::KernelModule(Module {
        op,
        name: (op == op::DELETE_MODULE).then(|| name.clone()),
        file_name: (op == op::FINIT_MODULE && !name.is_empty()).then_some(name),
        fd: (op == op::FINIT_MODULE).then_some(r.fd),
        image_bytes: (op == op::INIT_MODULE).then_some(r.len),
        params: text(&r.params, r.params_len),
        flags: r.mod_flags,
    }))
}

impl Module {
    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::INIT_MODULE => "init_module",
            op::FINIT_MODULE => "finit_module",
            _ => "delete_module",
        }
    }

    pub fn kind(&self) -> Kind {
        let (types, action): (&'static [&'static str], _) = match self.op {
            op::DELETE_MODULE => (&["end"], "module-unload"),
            _ => (&["start"], "module-load"),
        };
        Kind { kind: "event", category: "driver", types, action, dataset: "docker_listener.kernel" }
    }

    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("kernel_module", self)
    }
}
