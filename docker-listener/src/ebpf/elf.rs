//! The few ELF facts the daemon reads from its own eBPF object before aya parses it: the
//! section headers (the kfunc rewrite finds the programs' code by them; a test finds
//! `.BTF.ext`). Every offset is checked against the object, which is the daemon's own build
//! but still bytes read at run time.
use std::ops::Range;

/// ELFCLASS64, ELFDATA2LSB.
const IDENT: &[u8] = b"\x7fELF\x02\x01";
pub const EM_BPF: u16 = 247;
/// `sh_flags`: the section holds instructions.
pub const SHF_EXECINSTR: u64 = 0x4;

#[derive(Debug, thiserror::Error)]
#[error(
    "the embedded eBPF object is not a little-endian 64-bit BPF ELF file whose sections lie inside it: \
     rebuild docker-listener (`cargo xtask build`: its eBPF object and daemon come from one build)"
)]
pub struct NotElf;

/// One section header.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// `sh_name`: the name's offset in the section-name table.
    name: u64,
    pub flags: u64,
    offset: u64,
    size: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The object's section headers, in order.
pub fn sections(elf: &[u8]) -> Result<Vec<Section>, NotElf> {
    if elf.get(..IDENT.len()) != Some(IDENT) || u16_at(elf, 0x12) != Some(EM_BPF) {
        return Err(NotElf);
    }
    let shoff = u64_at(elf, 0x28).ok_or(NotElf)?;
    let entsize = u64::from(u16_at(elf, 0x3a).ok_or(NotElf)?);
    let count = u64::from(u16_at(elf, 0x3c).ok_or(NotElf)?);
    if entsize < 0x28 {
        return Err(NotElf);
    }
    (0..count)
        .map(|i| {
            let at = entsize.checked_mul(i).and_then(|o| o.checked_add(shoff)).ok_or(NotElf)?;
            let at = usize::try_from(at).map_err(|_| NotElf)?;
            let field = |o: usize| at.checked_add(o).and_then(|a| u64_at(elf, a)).ok_or(NotElf);
            let name = u32_at(elf, at).ok_or(NotElf)?;
            Ok(Section { name: u64::from(name), flags: field(8)?, offset: field(24)?, size: field(32)? })
        })
        .collect()
}

impl Section {
    /// Where the section's bytes lie in the object (not for `SHT_NOBITS` sections: `.bss`).
    pub fn range(&self, elf: &[u8]) -> Result<Range<usize>, NotElf> {
        let end = self.offset.checked_add(self.size).ok_or(NotElf)?;
        if end > elf.len() as u64 {
            return Err(NotElf);
        }
        Ok(self.offset as usize..end as usize)
    }
}

/// The bytes of the section named `name`, if the object has one.
pub fn section_named<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, NotElf> {
    let all = sections(elf)?;
    let names = all.get(usize::from(u16_at(elf, 0x3e).ok_or(NotElf)?)).ok_or(NotElf)?.range(elf)?;
    for s in &all {
        let at = usize::try_from(s.name).map_err(|_| NotElf)?;
        let found = elf[names.clone()].get(at..).ok_or(NotElf)?;
        if found.strip_prefix(name.as_bytes()).is_some_and(|rest| rest.first() == Some(&0)) {
            return Ok(Some(&elf[s.range(elf)?]));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_found_by_their_whole_name_in_the_daemon_s_own_object() {
        crate::ebpf::each_object(|_, elf| {
            let ext = section_named(elf, ".BTF.ext").unwrap().expect("a .BTF.ext section");
            assert_eq!(ext.get(..2), Some(&0xeb9fu16.to_le_bytes()[..]));
            assert_eq!(
                section_named(elf, ".BTF").unwrap().map(|b| b.get(..2)),
                Some(Some(&0xeb9fu16.to_le_bytes()[..]))
            );
            assert!(section_named(elf, ".BTF.e").unwrap().is_none(), "a prefix of a name is not that name");
            assert!(section_named(elf, ".no-such-section").unwrap().is_none());
            assert!(sections(elf).unwrap().iter().any(|s| s.flags & SHF_EXECINSTR != 0));
        });
    }

    #[test]
    fn a_truncated_or_foreign_object_is_refused() {
        assert!(sections(b"\x7fELF\x02\x01").is_err());
        assert!(section_named(b"not an elf at all, not even close to it", ".text").is_err());
    }
}
