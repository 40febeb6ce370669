//! The kernel's BTF read in place. A BTF parser that builds every type (btf-rs, aya's own)
//! costs 15-35 MiB for vmlinux's ~130,000 types, at start, where the agent's memory peak is set;
//! the daemon needs a few dozen struct members and the ids of two tracepoint typedefs. This keeps
//! the file's bytes (5-6 MiB) and one `u32` per type (where it starts), and reads the records it
//! is asked about. Format: the kernel's `Documentation/bpf/btf.rst`.
//!
//! A module's BTF (overlayfs's, when it is a module) is *split*: its type ids and string offsets
//! continue those of vmlinux, which it refers to; [`Btf::read`] reads it on top of its base.
use std::{ops::Range, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0} is not valid BTF ({1})")]
    Invalid(String, &'static str),
}

/// Kinds (`BTF_KIND_*`) the reader looks at.
pub mod kind {
    pub const PTR: u8 = 2;
    pub const STRUCT: u8 = 4;
    pub const UNION: u8 = 5;
    pub const TYPEDEF: u8 = 8;
    pub const FUNC: u8 = 12;
    pub const VOLATILE: u8 = 9;
    pub const CONST: u8 = 10;
    pub const RESTRICT: u8 = 11;
    pub const TYPE_TAG: u8 = 18;
}

const HEADER_LEN: usize = 24;
const MAGIC: u16 = 0xeb9f;

/// One parsed BTF blob: its bytes and where each of its types starts.
pub struct Btf<'b> {
    data: Vec<u8>,
    /// Byte offset in `data` of each type, by `id - first_id`.
    starts: Vec<u32>,
    /// The type section's end (after the last type).
    types_end: usize,
    strings: Range<usize>,
    /// The first type id and string offset of this blob (0 and 1 for vmlinux: id 0 is `void`).
    first_id: u32,
    first_str: u32,
    base: Option<&'b Btf<'b>>,
}

/// A struct or union member: its name, type id and offset (bits, or bitfield-encoded).
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset in bits from the start of the composite.
    pub bit_offset: u32,
    /// Non-zero for a bitfield.
    pub bitfield_size: u32,
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'b> Btf<'b> {
    /// Reads a BTF file: a complete one such as `/sys/kernel/btf/vmlinux` (`base` `None`), or a
    /// module's split BTF on top of its vmlinux.
    pub fn read(path: &Path, base: Option<&'b Btf<'b>>) -> Result<Btf<'b>, BtfError> {
        let name = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: name.clone(), source })?;
        Btf::parse(&name, data, base)
    }

    /// Parses `data` (named `what` in errors). Little-endian only: the agent runs on x86-64.
    pub fn parse(what: &str, data: Vec<u8>, base: Option<&'b Btf<'b>>) -> Result<Btf<'b>, BtfError> {
        let bad = |why| BtfError::Invalid(what.to_owned(), why);
        if data.len() < HEADER_LEN || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(bad("no BTF magic"));
        }
        let hdr_len = u32_at(&data, 4) as usize;
        let field = |i: usize| u32_at(&data, 8 + 4 * i) as usize;
        let (type_off, type_len, str_off, str_len) = (field(0), field(1), field(2), field(3));
        let types = hdr_len + type_off..hdr_len + type_off + type_len;
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        if types.end > data.len() || strings.end > data.len() {
            return Err(bad("sections beyond the end of the data"));
        }
        let (first_id, first_str) = match base {
            Some(b) => (b.first_id + b.starts.len() as u32, b.first_str + b.strings.len() as u32),
            None => (1, 0),
        };
        let mut starts = Vec::with_capacity(type_len / 20);
        let mut at = types.start;
        while at < types.end {
            starts.push(at as u32);
            let info = u32_at(&data, at + 4);
            let vlen = (info & 0xffff) as usize;
            let extra = match ((info >> 24) & 0x1f) as u8 {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, qualifiers, FUNC, FLOAT, TYPE_TAG
                _ => return Err(bad("a type of unknown kind")),
            };
            at += 12 + extra;
        }
        if at != types.end {
            return Err(bad("the last type runs past its section"));
        }
        Ok(Btf { data, starts, types_end: types.end, strings, first_id, first_str, base })
    }

    /// The blob (and its offset in it) holding type `id`.
    fn locate(&self, id: u32) -> Option<(&Btf<'b>, usize)> {
        if id >= self.first_id {
            let start = *self.starts.get((id - self.first_id) as usize)?;
            return Some((self, start as usize));
        }
        self.base.and_then(|b| b.locate(id))
    }

    /// The name at string offset `off` (empty when out of range or not UTF-8).
    pub fn name(&self, off: u32) -> &str {
        if off < self.first_str {
            return self.base.map_or("", |b| b.name(off));
        }
        let from = self.strings.start + (off - self.first_str) as usize;
        let Some(tail) = self.data.get(from..self.strings.end) else { return "" };
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    /// (kind, name offset, vlen, size-or-type) of type `id`.
    pub fn header(&self, id: u32) -> Option<(u8, u32, usize, u32)> {
        let (btf, at) = self.locate(id)?;
        let info = u32_at(&btf.data, at + 4);
        Some((((info >> 24) & 0x1f) as u8, u32_at(&btf.data, at), (info & 0xffff) as usize, u32_at(&btf.data, at + 8)))
    }

    /// The ids of this blob's own types named `name`, of `kind` when given.
    pub fn ids_by_name<'s>(&'s self, name: &'s str, kind: Option<u8>) -> impl Iterator<Item = u32> + 's {
        (self.first_id..self.first_id + self.starts.len() as u32).filter(move |&id| {
            self.header(id).is_some_and(|(k, off, _, _)| kind.is_none_or(|want| k == want) && self.name(off) == name)
        })
    }

    /// The members of struct or union `id` (none for any other kind).
    pub fn members(&self, id: u32) -> Vec<Member> {
        let Some((btf, at)) = self.locate(id) else { return Vec::new() };
        let info = u32_at(&btf.data, at + 4);
        let kind = ((info >> 24) & 0x1f) as u8;
        if kind != kind::STRUCT && kind != kind::UNION {
            return Vec::new();
        }
        let bitfields = info & 0x8000_0000 != 0;
        (0..(info & 0xffff) as usize)
            .map(|i| {
                let m = at + 12 + 12 * i;
                let offset = u32_at(&btf.data, m + 8);
                let (bit_offset, bitfield_size) =
                    if bitfields { (offset & 0x00ff_ffff, offset >> 24) } else { (offset, 0) };
                Member { name_off: u32_at(&btf.data, m), type_id: u32_at(&btf.data, m + 4), bit_offset, bitfield_size }
            })
            .collect()
    }

    /// Whether type `id`, under typedefs and qualifiers, is a pointer.
    pub fn is_pointer(&self, mut id: u32) -> bool {
        for _ in 0..16 {
            match self.header(id) {
                Some((kind::PTR, ..)) => return true,
                Some((kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG, _, _, next)) => {
                    id = next
                }
                _ => return false,
            }
        }
        false
    }

    /// Follows typedefs and qualifiers from `id` to the struct or union under them, if any.
    pub fn composite(&self, mut id: u32) -> Option<u32> {
        for _ in 0..16 {
            let (k, _, _, next) = self.header(id)?;
            match k {
                kind::STRUCT | kind::UNION => return Some(id),
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => id = next,
                _ => return None,
            }
        }
        None
    }

    /// This blob cut after type `last`, as BTF bytes: the same header, types `1..=last` (their
    /// ids unchanged: an id is a type's position) and every string. aya's own parse of it builds
    /// those types only, where a parse of all of vmlinux builds ~130,000.
    pub fn prefix(&self, last: u32) -> Option<Vec<u8>> {
        if self.base.is_some() || last < self.first_id {
            return None;
        }
        let end = self.starts.get((last - self.first_id + 1) as usize).map_or(self.types_end, |&s| s as usize);
        let types = *self.starts.first()? as usize..end;
        let mut out = Vec::with_capacity(HEADER_LEN + types.len() + self.strings.len());
        out.extend_from_slice(&self.data[..8]);
        out[4..8].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        for v in [0, types.len(), types.len(), self.strings.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.data[types]);
        out.extend_from_slice(&self.data[self.strings.clone()]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny BTF: int (1), struct s { int a; union { int b; } ; int c:3 @ bit 64 } (2),
    /// the anonymous union (3), typedef t = s (4).
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0c\0t\0";
        let off = |s: &str| {
            let needle = format!("\0{s}\0");
            strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() as u32 + 1
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_le_bytes()));
        push(&[off("int"), 1 << 24, 4, 32]); // INT, 32 bits
        push(&[off("s"), (4 << 24) | (1 << 31) | 3, 12]); // STRUCT, kind_flag, 3 members
        push(&[off("a"), 1, 0]);
        push(&[0, 3, 32]); // the anonymous union at byte 4
        push(&[off("c"), 1, (3 << 24) | 64]); // c:3 at bit 64
        push(&[0, (5 << 24) | 1, 4]); // UNION, 1 member
        push(&[off("b"), 1, 0]);
        push(&[off("t"), 8 << 24, 2]); // TYPEDEF t -> s
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for v in [HEADER_LEN, 0, types.len(), types.len(), strings.len()] {
            data.extend_from_slice(&(v as u32).to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(strings);
        data
    }

    #[test]
    fn reads_types_members_and_names() {
        let btf = Btf::parse("sample", sample(), None).unwrap();
        assert_eq!(btf.ids_by_name("s", Some(kind::STRUCT)).collect::<Vec<_>>(), [2]);
        assert_eq!(btf.ids_by_name("t", None).collect::<Vec<_>>(), [4]);
        assert_eq!(btf.composite(4), Some(2), "through the typedef");
        let m = btf.members(2);
        assert_eq!(m.iter().map(|m| btf.name(m.name_off)).collect::<Vec<_>>(), ["a", "", "c"]);
        assert_eq!((m[1].bit_offset, m[2].bit_offset, m[2].bitfield_size), (32, 64, 3));
        assert_eq!(btf.members(btf.composite(m[1].type_id).unwrap()).len(), 1);
        assert!(btf.members(1).is_empty(), "an int has no members");
        assert!(btf.header(9).is_none());
    }

    #[test]
    fn a_prefix_keeps_ids_and_strings() {
        let btf = Btf::parse("sample", sample(), None).unwrap();
        let cut = Btf::parse("prefix", btf.prefix(3).unwrap(), None).unwrap();
        assert_eq!(cut.ids_by_name("s", Some(kind::STRUCT)).collect::<Vec<_>>(), [2]);
        assert!(cut.header(4).is_none(), "the typedef after the cut is gone");
        assert_eq!(cut.name(btf.header(4).unwrap().1), "t", "every string is kept");
    }

    #[test]
    fn split_btf_continues_its_base() {
        let base = Btf::parse("base", sample(), None).unwrap();
        // One struct `u` { s inner } whose name is new and whose member names one of the base.
        let base_strings = base.strings.len() as u32;
        let strings = b"\0u\0";
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for v in [HEADER_LEN, 0, 24, 24, strings.len()] {
            data.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for w in [base_strings + 1, (4 << 24) | 1, 12, btf_off(&base, "a"), 2, 0] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(strings);
        let module = Btf::parse("module", data, Some(&base)).unwrap();
        assert_eq!(module.ids_by_name("u", Some(kind::STRUCT)).collect::<Vec<_>>(), [5]);
        let m = module.members(5);
        assert_eq!((module.name(m[0].name_off), module.composite(m[0].type_id)), ("a", Some(2)));
        assert!(module.prefix(5).is_none(), "a split blob has no prefix of its own");
    }

    fn btf_off(btf: &Btf, name: &str) -> u32 {
        (0..btf.strings.len() as u32).find(|&o| btf.name(o) == name && (o == 0 || btf.name(o - 1).is_empty())).unwrap()
    }

    #[test]
    fn no_types_no_prefix() {
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for v in [HEADER_LEN, 0, 0, 0, 1] {
            data.extend_from_slice(&(v as u32).to_le_bytes());
        }
        data.push(0);
        let btf = Btf::parse("empty", data, None).unwrap();
        assert_eq!(btf.ids_by_name("x", None).count(), 0);
        assert!(btf.prefix(1).is_none() && btf.prefix(7).is_none());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Btf::parse("x", vec![0; 10], None).is_err());
        let mut data = sample();
        data[12..16].copy_from_slice(&1000u32.to_le_bytes()); // type_len beyond the data
        assert!(Btf::parse("x", data, None).is_err());
        let mut data = sample();
        data[HEADER_LEN + 4 + 3] = 30; // kind 30
        assert!(Btf::parse("x", data, None).is_err());
    }
}
