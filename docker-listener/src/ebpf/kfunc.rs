//! The object's kfunc calls. The programs call the kfunc `bpf_rdonly_cast` (an untyped kernel
//! pointer made a BTF-typed one, read by plain loads instead of a helper call each: kernels 6.2
//! and later), but aya 0.14 relocates no kfunc calls. So the programs call it as a helper
//! numbered [`RDONLY_CAST_CALL`], and before the object is parsed the daemon rewrites each such
//! call instruction: into the kfunc's call (its BTF id in the kernel's BTF) where a probe
//! program calling it loaded, into `r0 = 0` where not. The programs test a load-time constant
//! (`file_type_id`, 0 where the calls are `r0 = 0`) before they use the cast, so each kernel's
//! verifier walks either the typed loads or the helper reads, never a use of the null.
//!
//! The same pass stands in for a helper the kernel lacks where an older one does its work:
//! `bpf_get_current_task_btf` (Linux 5.11) becomes `bpf_get_current_task` on 5.10, where the
//! programs that call it only hand the task to probe reads.
use docker_listener_common::RDONLY_CAST_CALL;

use super::elf::{self, NotElf};

/// What the kernel's BTF says of the cast: the kfunc's id, `struct file`'s, and the typedef
/// the exit program attaches by (the probe program loads as that program does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RdonlyCast {
    pub func: u32,
    pub file: u32,
    pub attach: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KfuncError {
    #[error(transparent)]
    NotElf(#[from] NotElf),
    #[error(
        "the embedded eBPF object has no call of bpf_rdonly_cast to rewrite: it is not this daemon's own build; \
         rebuild docker-listener (`cargo xtask build`)"
    )]
    NoCall,
}

const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const BPF_MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_EXIT: u8 = 0x95;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
/// Helper ids (uapi `enum bpf_func_id`).
const BPF_FUNC_GET_CURRENT_TASK: u32 = 35;
const BPF_FUNC_GET_CURRENT_TASK_BTF: u32 = 158;

/// The byte ranges of the object's executable sections (its programs' instructions).
fn code_sections(elf: &[u8]) -> Result<Vec<std::ops::Range<usize>>, NotElf> {
    elf::sections(elf)?.iter().filter(|s| s.flags & elf::SHF_EXECINSTR != 0).map(|s| s.range(elf)).collect()
}

/// Rewrites each `call RDONLY_CAST_CALL` of `elf`'s code in place: into a call of the kfunc
/// whose BTF id is `kfunc`, or into `r0 = 0` when `None`; and, unless `task_btf` (the kernel has
/// `bpf_get_current_task_btf`), each call of that helper into `bpf_get_current_task`. The
/// instructions are put back as they were built when the result is dropped (after the load, or
/// if it panics).
pub fn rewrite(elf: &mut [u8], kfunc: Option<u32>, task_btf: bool) -> Result<Rewritten<'_>, KfuncError> {
    let task_btf_call = insn_bytes(BPF_CALL, 0, 0, BPF_FUNC_GET_CURRENT_TASK_BTF);
    let mut sites = Vec::new();
    let mut casts = 0;
    for range in code_sections(elf)? {
        for (i, insn) in elf[range.clone()].chunks_exact_mut(8).enumerate() {
            let new = if *insn == CAST_CALL {
                casts += 1;
                match kfunc {
                    Some(id) => insn_bytes(BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, id),
                    None => insn_bytes(BPF_MOV64_IMM, 0, 0, 0),
                }
            } else if !task_btf && *insn == task_btf_call {
                insn_bytes(BPF_CALL, 0, 0, BPF_FUNC_GET_CURRENT_TASK)
            } else {
                continue;
            };
            let mut was = [0u8; 8];
            was.copy_from_slice(insn);
            insn.copy_from_slice(&new);
            sites.push((range.start + i * 8, was));
        }
    }
    if casts == 0 {
        // (Put back what was rewritten before saying so.)
        drop(Rewritten { elf, sites, casts });
        return Err(KfuncError::NoCall);
    }
    Ok(Rewritten { elf, sites, casts })
}

/// An object whose calls [`rewrite`] rewrote, until dropped.
pub struct Rewritten<'a> {
    elf: &'a mut [u8],
    /// Where an instruction was rewritten, and what it was.
    sites: Vec<(usize, [u8; 8])>,
    casts: usize,
}

impl Rewritten<'_> {
    pub fn bytes(&self) -> &[u8] {
        self.elf
    }

    /// How many calls of the cast were rewritten.
    pub fn calls(&self) -> usize {
        self.casts
    }

    /// How many calls of `bpf_get_current_task_btf` were made calls of `bpf_get_current_task`.
    pub fn task_calls(&self) -> usize {
        self.sites.len() - self.casts
    }
}

impl Drop for Rewritten<'_> {
    fn drop(&mut self) {
        for (at, was) in &self.sites {
            if let Some(insn) = self.elf.get_mut(*at..*at + 8) {
                insn.copy_from_slice(was);
            }
        }
    }
}

/// `call RDONLY_CAST_CALL`, as the compiler emits it.
const CAST_CALL: [u8; 8] = insn_bytes(BPF_CALL, 0, 0, RDONLY_CAST_CALL);

/// A copy of `elf` whose `bpf_loop` calls call a helper no kernel has, so that the verifier
/// refuses every program that walks a path with it (and only those). For the end-to-end test
/// of the fallback to the unrolled object on a kernel that has `bpf_loop`
/// (`EbpfProbes::load`); `elf` is returned as it is if it is not an ELF object.
pub fn refuse_loops(elf: &[u8]) -> Vec<u8> {
    const BPF_FUNC_LOOP: u32 = 181;
    let mut copy = elf.to_vec();
    let calls = insn_bytes(BPF_CALL, 0, 0, BPF_FUNC_LOOP);
    for range in code_sections(elf).unwrap_or_default() {
        for insn in copy[range].chunks_exact_mut(8).filter(|i| **i == calls) {
            insn.copy_from_slice(&insn_bytes(BPF_CALL, 0, 0, u32::MAX >> 1));
        }
    }
    copy
}

const fn insn_bytes(code: u8, dst: u8, src: u8, imm: u32) -> [u8; 8] {
    let i = imm.to_le_bytes();
    [code, (src << 4) | (dst & 0xf), 0, 0, i[0], i[1], i[2], i[3]]
}

/// Whether a program calling the kfunc as the object's programs do loads on this kernel: a
/// BTF tracepoint program (`attach`: its typedef) of five instructions,
/// `r1 = 0; r2 = <struct file>; call bpf_rdonly_cast; r0 = 0; exit`. The error is the
/// kernel's, with the verifier's log when it gave one.
pub fn probe(cast: &RdonlyCast) -> Result<(), String> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_TRACING: u32 = 26;
    const BPF_TRACE_RAW_TP: u32 = 23;
    let insns: Vec<u8> = [
        insn_bytes(BPF_MOV64_IMM, 1, 0, 0),
        insn_bytes(BPF_MOV64_IMM, 2, 0, cast.file),
        insn_bytes(BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, cast.func),
        insn_bytes(BPF_MOV64_IMM, 0, 0, 0),
        insn_bytes(BPF_EXIT, 0, 0, 0),
    ]
    .concat();
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: BPF_TRACE_RAW_TP,
        attach_btf_id: cast.attach,
        ..ProgLoad::default()
    };
    // SAFETY: `attr` is a `bpf_attr` prefix of the size given; the pointers in it (instructions,
    // license, log buffer) outlive the call.
    let fd =
        unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, &raw const attr, size_of::<ProgLoad>() as libc::c_uint) };
    if fd >= 0 {
        // SAFETY: the descriptor is the one the kernel just returned, closed once.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let end = log.iter().position(|&c| c == 0).unwrap_or(log.len());
    Err(match verifier_reason(&String::from_utf8_lossy(&log[..end])) {
        Some(why) => format!("{err}: {why}"),
        None => err.to_string(),
    })
}

/// The verifier's reason in its log: the last line that is not its closing statistics
/// (`processed N insns ...`, written after any failure).
fn verifier_reason(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|l| !l.is_empty() && !l.starts_with("processed "))
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `attach_btf_id` (the kernel zeroes what it has
/// beyond the size given).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one executable section holding `code` (and one that is not).
    fn elf(code: &[[u8; 8]], data: &[[u8; 8]]) -> Vec<u8> {
        let text: Vec<u8> = code.concat();
        let other: Vec<u8> = data.concat();
        let shoff = 64 + text.len() + other.len();
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[0x12..0x14].copy_from_slice(&elf::EM_BPF.to_le_bytes());
        f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        f.extend_from_slice(&text);
        f.extend_from_slice(&other);
        let header = |flags: u64, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        f.extend(header(0, 0, 0));
        f.extend(header(elf::SHF_EXECINSTR | 2, 64, text.len()));
        f.extend(header(2, 64 + text.len(), other.len()));
        f
    }

    #[test]
    fn calls_of_the_cast_are_rewritten_in_code_only_and_restored() {
        let cast = CAST_CALL;
        let helper = insn_bytes(BPF_CALL, 0, 0, 4); // bpf_probe_read: another helper
        let f = elf(&[helper, cast, insn_bytes(BPF_EXIT, 0, 0, 0), cast], &[cast]);
        let text = 64..64 + 32;
        let data = 64 + 32..64 + 40;

        let mut b = f.clone();
        let r = rewrite(&mut b, Some(0x1234), true).unwrap();
        assert_eq!(r.sites.iter().map(|s| s.0).collect::<Vec<_>>(), [text.start + 8, text.start + 24]);
        let got = r.bytes();
        assert_eq!(&got[text.start..text.start + 8], helper.as_slice(), "other calls stay");
        assert_eq!(&got[text.start + 8..text.start + 16], insn_bytes(BPF_CALL, 0, 2, 0x1234).as_slice());
        assert_eq!(&got[text.start + 24..text.end], insn_bytes(BPF_CALL, 0, 2, 0x1234).as_slice());
        assert_eq!(&got[data.clone()], cast.as_slice(), "data is not code");
        drop(r);
        assert_eq!(b, f, "restored");

        let r = rewrite(&mut b, None, true).unwrap();
        assert_eq!(r.calls(), 2);
        assert_eq!(&r.bytes()[text.start + 8..text.start + 16], [0xb7, 0, 0, 0, 0, 0, 0, 0].as_slice(), "r0 = 0");
        drop(r);
        assert_eq!(b, f, "restored");
    }

    #[test]
    fn where_the_kernel_lacks_the_btf_task_helper_the_plain_one_is_called() {
        let task_btf = insn_bytes(BPF_CALL, 0, 0, BPF_FUNC_GET_CURRENT_TASK_BTF);
        let task = insn_bytes(BPF_CALL, 0, 0, BPF_FUNC_GET_CURRENT_TASK);
        let f = elf(&[task_btf, CAST_CALL, task_btf], &[task_btf]);
        let text = 64..64 + 24;
        let mut b = f.clone();
        let r = rewrite(&mut b, None, false).unwrap();
        assert_eq!((r.calls(), r.task_calls()), (1, 2));
        assert_eq!(&r.bytes()[text.start..text.start + 8], task.as_slice());
        assert_eq!(&r.bytes()[text.start + 16..text.end], task.as_slice());
        assert_eq!(&r.bytes()[text.end..text.end + 8], task_btf.as_slice(), "data is not code");
        drop(r);
        assert_eq!(b, f, "restored");
        let r = rewrite(&mut b, None, true).unwrap();
        assert_eq!(r.task_calls(), 0, "a kernel that has it keeps it");
        drop(r);
        // Refused for want of the cast: nothing is left rewritten.
        let f = elf(&[task_btf], &[]);
        let mut b = f.clone();
        assert!(matches!(rewrite(&mut b, None, false), Err(KfuncError::NoCall)));
        assert_eq!(b, f);
    }

    #[test]
    fn an_object_without_the_call_or_not_elf_is_refused() {
        let mut f = elf(&[insn_bytes(BPF_EXIT, 0, 0, 0)], &[]);
        assert!(matches!(rewrite(&mut f, None, true), Err(KfuncError::NoCall)));
        assert!(matches!(rewrite(&mut b"not an elf".to_vec(), None, true), Err(KfuncError::NotElf(_))));
        let mut cut = elf(&[insn_bytes(BPF_EXIT, 0, 0, 0)], &[]);
        cut.truncate(100);
        assert!(matches!(rewrite(&mut cut, None, true), Err(KfuncError::NotElf(_))));
    }

    /// The attribute's members where the kernel's uapi `union bpf_attr` has them.
    #[test]
    fn the_load_attribute_is_laid_out_as_the_kernels() {
        use std::mem::offset_of;
        assert_eq!(
            [
                offset_of!(ProgLoad, insn_cnt),
                offset_of!(ProgLoad, insns),
                offset_of!(ProgLoad, license),
                offset_of!(ProgLoad, log_level),
                offset_of!(ProgLoad, log_buf),
                offset_of!(ProgLoad, prog_name),
                offset_of!(ProgLoad, expected_attach_type),
                offset_of!(ProgLoad, attach_btf_id),
            ],
            [4, 8, 16, 24, 32, 48, 68, 108]
        );
        assert_eq!(size_of::<ProgLoad>(), 112);
    }

    #[test]
    fn the_verifiers_reason_is_not_its_statistics() {
        let log = "0: R1=ctx() R10=fp0\ncalling kernel function bpf_rdonly_cast is not allowed\n\
                   processed 0 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(verifier_reason(log), Some("calling kernel function bpf_rdonly_cast is not allowed"));
        assert_eq!(verifier_reason(""), None);
    }

    #[test]
    fn another_machines_object_is_refused() {
        let mut f = elf(&[CAST_CALL], &[]);
        f[0x12] = 62; // EM_X86_64
        assert!(matches!(rewrite(&mut f, None, true), Err(KfuncError::NotElf(_))));
        let mut f = elf(&[CAST_CALL], &[]);
        f[5] = 2; // big-endian
        assert!(matches!(rewrite(&mut f, None, true), Err(KfuncError::NotElf(_))));
        let mut f = elf(&[CAST_CALL], &[]);
        f[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes()); // section headers nowhere
        assert!(matches!(rewrite(&mut f, None, true), Err(KfuncError::NotElf(_))));
    }

    /// Each object this daemon embeds has the call, and is left as built.
    #[test]
    fn the_embedded_object_calls_the_cast() {
        super::super::each_object(|_, elf| {
            let before = elf.to_vec();
            assert!(rewrite(elf, None, true).unwrap().calls() >= 1);
            assert!(*elf == before[..], "put back");
        });
    }
}
