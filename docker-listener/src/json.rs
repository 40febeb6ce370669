//! Our events' JSON writer: a `serde::Serializer` that writes compact JSON into a `Vec<u8>`,
//! byte for byte what `serde_json::to_writer` writes, with a cheaper string escape.
//!
//! Why it exists: serde_json's string escape was 27% of the instructions from the kernel's exec
//! record to its frame (`cargo bench --bench correlate`, BENCHMARKS.md): it walks every string
//! byte by byte, writing the runs between escapes through its `Formatter` and `io::Write`, each
//! write a `Result`. Here a string is searched for its first byte to escape and, when it has
//! none (nearly all: keys, ids, paths, most arguments), copied in one piece, straight into the
//! `Vec`. Numbers go through serde_json's own `CompactFormatter` (itoa, ryu), so they are
//! written exactly as serde_json writes them.
//!
//! Only the hot paths use it (`correlate::Emitted`, `encode`); the tests compare its output with
//! serde_json's for arbitrary values and for every kind of serde data.
use std::fmt;

use serde::ser::{self, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};

/// Why a value could not be written. Our events never fail (every map key is a string): these
/// are for values of other shapes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("a JSON object's key must be a string, an integer, a bool or a char; got {0}")]
    KeyMustBeAString(&'static str),
    #[error("a JSON object's key cannot be a non-finite number")]
    FloatKeyMustBeFinite,
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::Custom(msg.to_string())
    }
}

/// Appends `value`'s compact JSON to `out`. On an error `out` may hold part of the value.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// The name serde_json's `RawValue` serialises itself as (a struct of one field of that name
/// holding its JSON text); a test checks that it still does, so that a cached JSON object
/// (`registry::ObjectCache`) is spliced in as serde_json would.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// For each byte: 0 when it goes into a JSON string as it is, else its escape's second byte
/// (`u` for `\u00XX`). What serde_json escapes, and nothing more: `"`, `\` and the control
/// characters below 0x20.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// The contents of a JSON string (no quotes), escaped as serde_json escapes them. Most strings
/// have nothing to escape and are copied in one piece. (Testing eight bytes at a time saved no
/// time here: an event's strings are short, most of them keys.) In the static build a short
/// string is looked at and copied in one pass, byte by byte: there a call to copy a few bytes
/// costs more than the bytes (musl's `memcpy` starts a `rep movsq` for any length), where
/// glibc's copies them with a few vector moves, faster than the loop (both measured in
/// BENCHMARKS.md, round 43).
#[inline]
fn escape_into(out: &mut Vec<u8>, s: &str) {
    /// The longest string copied byte by byte, in the static build.
    const SHORT: usize = 24;
    let bytes = s.as_bytes();
    if cfg!(target_env = "musl") && bytes.len() <= SHORT {
        escape_bytewise(out, bytes)
    } else {
        escape_whole(out, bytes)
    }
}

/// `escape_into` by a search for the first byte to escape, then one copy.
#[inline]
fn escape_whole(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.iter().position(|&b| ESCAPE[b as usize] != 0) {
        None => out.extend_from_slice(bytes),
        Some(at) => {
            out.extend_from_slice(&bytes[..at]);
            escape_from(out, bytes, at)
        }
    }
}

/// `escape_into` looking at and copying each byte in turn.
#[inline]
fn escape_bytewise(out: &mut Vec<u8>, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        if ESCAPE[b as usize] != 0 {
            return escape_from(out, bytes, i);
        }
        out.push(b);
    }
}

/// From the first byte to escape on (`bytes[..first]` written already): the runs between
/// escapes copied whole.
#[cold]
fn escape_from(out: &mut Vec<u8>, bytes: &[u8], first: usize) {
    let mut run = first; // where the bytes not yet copied start
    for (i, &byte) in bytes.iter().enumerate().skip(first) {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(byte >> 4) as usize], HEX[(byte & 0xf) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// A `Display` value as a JSON string (`collect_str`, of a value or a key: `what`).
fn displayed<T: fmt::Display + ?Sized>(out: &mut Vec<u8>, value: &T, what: &str) -> Result<(), Error> {
    use fmt::Write;
    out.push(b'"');
    write!(Escaping(out), "{value}").map_err(|_| Error::Custom(format!("a {what}'s Display failed")))?;
    out.push(b'"');
    Ok(())
}

/// Writing into a `Vec<u8>` cannot fail; serde_json's formatter speaks `io::Result`.
fn number(out: &mut Vec<u8>, write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>) {
    let _ = write(&mut CompactFormatter, out);
}

/// The integer methods of a `Serializer` whose `number` writes what serde_json's formatter
/// writes (a value; a key, in quotes).
macro_rules! integers {
    () => {
        integers!(
            serialize_i8(i8) write_i8, serialize_i16(i16) write_i16, serialize_i32(i32) write_i32,
            serialize_i64(i64) write_i64, serialize_i128(i128) write_i128, serialize_u8(u8) write_u8,
            serialize_u16(u16) write_u16, serialize_u32(u32) write_u32, serialize_u64(u64) write_u64,
            serialize_u128(u128) write_u128
        );
    };
    ($($method:ident($t:ty) $write:ident),*) => {
        $(fn $method(self, v: $t) -> Result<(), Error> {
            self.number(|f, w| f.$write(w, v))
        })*
    };
}

impl Writer<'_> {
    fn number(
        &mut self,
        write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        number(self.out, write);
        Ok(())
    }

    /// An enum variant's wrapper object opened, up to its value: `{"Variant":`.
    fn open_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        string(self.out, variant);
        self.out.push(b':');
    }

    /// As serde_json: a NaN or an infinity is `null`.
    fn float(
        &mut self,
        finite: bool,
        write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        if finite {
            return self.number(write);
        }
        self.out.extend_from_slice(b"null");
        Ok(())
    }
}

/// `collect_str`'s text, escaped as it is formatted (no intermediate `String`).
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An array or object being written: whether a value has been written yet (for the commas).
pub struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    first: bool,
    /// `RawValue`'s one field: its text goes in as it is.
    raw: bool,
}

impl<'w, 'a> Compound<'w, 'a> {
    fn new(w: &'w mut Writer<'a>, open: u8) -> Self {
        w.out.push(open);
        Compound { w, first: true, raw: false }
    }

    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.w)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        self.comma();
        string(self.w.out, key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!();
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v.is_finite(), |f, w| f.write_f32(w, v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v.is_finite(), |f, w| f.write_f64(w, v))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // As serde_json: an array of numbers.
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.open_variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::new(self, b'['))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.open_variant(variant);
        Ok(Compound::new(self, b'['))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::new(self, b'{'))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'w, 'a>, Error> {
        if name == RAW_VALUE_TOKEN {
            return Ok(Compound { w: self, first: true, raw: true });
        }
        Ok(Compound::new(self, b'{'))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.open_variant(variant);
        Ok(Compound::new(self, b'{'))
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        displayed(self.out, value, "value")
    }
}

/// The array-like compounds: each element after a comma, then the closing bytes.
macro_rules! sequence {
    ($($trait:ident::$method:ident closed by $close:literal;)*) => {
        $(impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.w.out.extend_from_slice($close);
                Ok(())
            }
        })*
    };
}

sequence! {
    SerializeSeq::serialize_element closed by b"]";
    SerializeTuple::serialize_element closed by b"]";
    SerializeTupleStruct::serialize_field closed by b"]";
    // `{"Variant":[...]}`
    SerializeTupleVariant::serialize_field closed by b"]}";
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(KeyWriter { out: self.w.out })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if self.raw {
            // serde_json's RawValue: its one field is its JSON text, written as it is.
            return value.serialize(RawWriter { out: self.w.out });
        }
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        if !self.raw {
            self.w.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(b"}}");
        Ok(())
    }
}

/// The types of a `Serializer` that takes no array, map or struct (a key, a raw value's text).
macro_rules! scalar_only {
    () => {
        type Ok = ();
        type Error = Error;
        type SerializeSeq = ser::Impossible<(), Error>;
        type SerializeTuple = ser::Impossible<(), Error>;
        type SerializeTupleStruct = ser::Impossible<(), Error>;
        type SerializeTupleVariant = ser::Impossible<(), Error>;
        type SerializeMap = ser::Impossible<(), Error>;
        type SerializeStruct = ser::Impossible<(), Error>;
        type SerializeStructVariant = ser::Impossible<(), Error>;
    };
}

/// A map's key, as serde_json writes keys: strings, and integers, bools and chars quoted.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl KeyWriter<'_> {
    /// A number as a key: in quotes.
    fn number(
        self,
        write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        self.out.push(b'"');
        number(self.out, write);
        self.out.push(b'"');
        Ok(())
    }
}

/// The key kinds serde_json refuses too.
macro_rules! refuse_key {
    ($($method:ident($($arg:ty),*) -> $ret:ty: $what:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, Error> {
            Err(Error::KeyMustBeAString($what))
        })*
    };
}

impl ser::Serializer for KeyWriter<'_> {
    scalar_only!();

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        string(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.serialize_str(if v { "true" } else { "false" })
    }
    integers!();
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error::FloatKeyMustBeFinite);
        }
        self.number(|f, w| f.write_f32(w, v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error::FloatKeyMustBeFinite);
        }
        self.number(|f, w| f.write_f64(w, v))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        displayed(self.out, value, "key")
    }

    refuse_key! {
        serialize_bytes(&[u8]) -> (): "bytes";
        serialize_none() -> (): "null";
        serialize_unit() -> (): "null";
        serialize_unit_struct(&'static str) -> (): "a unit struct";
        serialize_seq(Option<usize>) -> Self::SerializeSeq: "an array";
        serialize_tuple(usize) -> Self::SerializeTuple: "a tuple";
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct: "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant: "an enum";
        serialize_map(Option<usize>) -> Self::SerializeMap: "a map";
        serialize_struct(&'static str, usize) -> Self::SerializeStruct: "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant: "an enum";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(Error::KeyMustBeAString("an enum"))
    }
}

/// The calls a raw value's field never makes.
macro_rules! refuse_raw {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, Error> {
            Err(raw_not_text())
        })*
    };
}

/// `RawValue`'s field: a `&str` of JSON, already valid (serde_json checked it when the value
/// was made), copied as it is.
struct RawWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::Serializer for RawWriter<'_> {
    scalar_only!();

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    refuse_raw! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(raw_not_text())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<(), Error> {
        Err(raw_not_text())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(raw_not_text())
    }
}

fn raw_not_text() -> Error {
    Error::Custom(String::from("a raw JSON value's field must be its text"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, value::RawValue};

    use super::*;

    fn ours<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        write(&mut out, v).map(|()| out)
    }

    /// Ours and serde_json's bytes, both.
    fn same<T: Serialize + ?Sized>(v: &T) {
        let theirs = serde_json::to_vec(v).expect("serde_json writes it");
        let mine = ours(v).expect("we write it");
        assert_eq!(String::from_utf8_lossy(&mine), String::from_utf8_lossy(&theirs));
    }

    #[test]
    fn every_byte_in_every_position_escapes_as_serde_json() {
        // Each ASCII byte (and a multi-byte char) at every offset of strings around the
        // eight-byte steps, alone and in runs.
        let specials: Vec<String> =
            (0u8..0x80).map(|b| char::from(b).to_string()).chain(["é", "😀", "\u{7f}"].map(String::from)).collect();
        for s in &specials {
            for len in 0..20 {
                for at in 0..=len {
                    let mut text = "a".repeat(len);
                    text.insert_str(at, s);
                    same(&text);
                    same(&text.replace('a', s));
                }
            }
        }
    }

    #[derive(Serialize)]
    enum E {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct {
            a: Option<u8>,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<u8>,
        },
    }

    #[derive(Serialize)]
    struct Inner {
        x: f64,
        y: f32,
    }

    #[derive(Serialize)]
    struct Outer<'a> {
        name: &'a str,
        #[serde(flatten)]
        inner: Inner,
        list: Vec<E>,
        unit: (),
        tuple: (u8, char, bool),
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        big: u128,
        small: i128,
        keys: BTreeMap<i64, u8>,
        bool_keys: BTreeMap<bool, u8>,
        empty: BTreeMap<String, u8>,
        empty_list: Vec<u8>,
        raw: &'a RawValue,
        display: Displayed,
    }

    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    struct Displayed;
    impl Serialize for Displayed {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("a \"quoted\"\n{}\t{}", 42, '\u{1}'))
        }
    }

    #[test]
    fn every_kind_of_serde_data_as_serde_json() {
        let raw = RawValue::from_string(r#"{"id":"abc","labels":{"k":"v \"q\""}}"#.to_owned()).unwrap();
        let v = Outer {
            name: "n\u{0}\u{1f}\"\\/",
            inner: Inner { x: 0.1 + 0.2, y: 1.5e-7 },
            list: vec![
                E::Unit,
                E::Newtype(7),
                E::Tuple(-3, "t".into()),
                E::Struct { a: None, b: None },
                E::Struct { a: Some(1), b: Some(2) },
            ],
            unit: (),
            tuple: (255, 'é', false),
            bytes: vec![0, 1, 255],
            big: u128::MAX,
            small: i128::MIN,
            keys: [(-1, 1), (i64::MAX, 2)].into(),
            bool_keys: [(true, 1), (false, 0)].into(),
            empty: BTreeMap::new(),
            empty_list: vec![],
            raw: &raw,
            display: Displayed,
        };
        same(&v);
        same(&[f64::NAN, f64::INFINITY, -0.0, 1e300]);
        same(&[f32::NAN, f32::NEG_INFINITY, 3.25]);
        same(&Some(None::<u8>));
    }

    #[test]
    fn raw_values_are_spliced_in_as_serde_json_does() {
        // If serde_json ever changes how RawValue serialises itself, this fails: the token
        // above must follow.
        let raw = RawValue::from_string(r#"{"a": [1, 2], "b":"\u00e9"}"#.to_owned()).unwrap();
        same(&raw);
        assert_eq!(ours(&raw).unwrap(), br#"{"a": [1, 2], "b":"\u00e9"}"#);
    }

    #[test]
    fn keys_serde_json_refuses_we_refuse() {
        let mut m = BTreeMap::new();
        m.insert(vec![1u8], 1);
        assert!(serde_json::to_vec(&m).is_err());
        assert_eq!(ours(&m), Err(Error::KeyMustBeAString("an array")));
        let f: BTreeMap<String, f64> = BTreeMap::new();
        same(&f);
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_as_serde_json(v in value()) {
            let theirs = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(ours(&v).unwrap(), theirs);
        }

        /// Both ways of escaping a string (the static build's for short strings, and the
        /// other) write what serde_json writes, whichever build runs the test.
        #[test]
        fn a_string_escaped_either_way_as_serde_json(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::char::any(),
                    proptest::char::range('\0', '\u{1f}'),
                    proptest::sample::select(vec!['"', '\\', 'a', 'é']),
                ],
                0..40,
            ),
            pre in proptest::collection::vec(proptest::num::u8::ANY, 0..4),
        ) {
            let s: String = chars.into_iter().collect();
            let theirs = serde_json::to_vec(&s).unwrap();
            for escape in [escape_whole, escape_bytewise] {
                let mut out = pre.clone();
                out.push(b'"');
                escape(&mut out, s.as_bytes());
                out.push(b'"');
                prop_assert_eq!(&out[..pre.len()], &pre[..]);
                prop_assert_eq!(&out[pre.len()..], &theirs[..]);
            }
        }
    }
}
