//! `kernel-module`: init_module, finit_module and delete_module by a traced process, reported at
//! their exit by the raw exit program (`syscall_exit.rs`), refused ones included. A container
//! has no business loading a module; a privileged one that does owns the host.
use docker_listener_common::{
    RecordKind,
    family::{
        ARG_PATH_CAP, STRING_TRUNCATED,
        kmod::{KernelModuleRecord, op},
    },
};

use crate::{
    budget::{admit_call, class, failed},
    kernel::{file_name, file_of_fd},
    maps::{reserve, submit},
    syscall_exit::{call_head, user_str},
};

/// init_module(image, len, params); finit_module(fd, params, flags); delete_module(name, flags).
#[inline(always)]
pub fn on_exit(op: u32, a: &[u64; 6], ret: i64, flags: u32) {
    if !admit_call(class::KERNEL_MODULE, u64::from(op) << 1 | failed(ret)) {
        return;
    }
    let Some((mut entry, header)) = reserve::<KernelModuleRecord>(RecordKind::KernelModule) else { return };
    let r = entry.as_mut_ptr();
    unsafe {
        (*r).call = call_head(header, op, ret, flags);
        (*r).fd = -1;
        (*r).len = 0;
        (*r).mod_flags = 0;
        (*r).name_len = 0;
        (*r).params_len = 0;
        (*r)._pad = 0;
        let cap = ARG_PATH_CAP as u32;
        let params = match op {
            op::INIT_MODULE => {
                (*r).len = a[1] as u32;
                a[2]
            }
            op::FINIT_MODULE => {
                (*r).fd = a[0] as i32;
                (*r).mod_flags = a[2] as u32;
                // The module file's name, from the descriptor: the kernel's, not the caller's.
                if let Some(file) = file_of_fd(a[0] as i32) {
                    (*r).name_len = file_name(file, (*r).name.as_mut_ptr(), cap);
                }
                a[1]
            }
            _ => {
                let (n, cut) = user_str(a[0], (*r).name.as_mut_ptr(), cap);
                (*r).name_len = n;
                (*r).mod_flags = a[1] as u32;
                if cut {
                    (*r).call.flags |= STRING_TRUNCATED;
                }
                0
            }
        };
        let (n, cut) = user_str(params, (*r).params.as_mut_ptr(), cap);
        (*r).params_len = n;
        if cut {
            (*r).call.flags |= STRING_TRUNCATED;
        }
    }
    submit(entry);
}
