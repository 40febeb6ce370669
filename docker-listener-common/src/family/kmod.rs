//! `kernel-module`: init_module, finit_module, delete_module.
use super::{ARG_PATH_CAP, CallHead};

pub mod op {
    pub const INIT_MODULE: u32 = 1;
    pub const FINIT_MODULE: u32 = 2;
    pub const DELETE_MODULE: u32 = 3;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelModuleRecord {
    pub call: CallHead,
    /// finit_module: the module file's descriptor; else -1.
    pub fd: i32,
    /// init_module: the image's length (cut to 32 bits).
    pub len: u32,
    /// finit_module's or delete_module's flags.
    pub mod_flags: u32,
    /// Bytes of `name` used: delete_module's module name; finit_module's file (its name, from
    /// the descriptor: the kernel's, not a string the caller passed).
    pub name_len: u32,
    pub params_len: u32,
    pub _pad: u32,
    pub name: [u8; ARG_PATH_CAP],
    /// The module parameters (init_module, finit_module).
    pub params: [u8; ARG_PATH_CAP],
}
