//! `network` (`event.action`: `dns-query`, `network-flow`): a container process's sends that no
//! connect shows. A message to port 53 is a DNS query: its question is read here from the head
//! of the message the kernel copied (the name as sent, whatever the program's resolver), with a
//! documented heuristic for names that carry data (tunnels, exfiltration). A UDP send that names
//! its destination is a flow, reported the first time its socket sends there.
use std::{borrow::Cow, fmt::Write as _};

use docker_listener_common::{
    RecordKind,
    family::{
        CallHead,
        net::{NetRecord, op, what},
        switch,
    },
};
use serde::{Serialize, ser::SerializeMap};

use super::{AtExit, Detail, Family, Reported};
use crate::{
    ebpf::record::{Endpoint, RecordError, endpoint, pod_ref},
    ecs::{
        Kind,
        parts::{EndpointOut, family_name, transport},
    },
};

pub const FAMILY: Family = Family {
    name: "network",
    kind: RecordKind::Network,
    enabled: |c| c.dns || c.udp_flows,
    reported: Reported::AtExit(AtExit {
        switch: switch::NETWORK,
        decode,
        sees: "DNS queries (sends to port 53: write, writev, sendto, sendmsg, sendmmsg) and UDP flows (sends that name \
           their destination)",
    }),
};

/// A send the kernel reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub op: u32,
    pub fd: i32,
    pub sock_type: u16,
    pub protocol: u16,
    pub family: u16,
    /// The bytes the call was asked to send (this message's).
    pub len: u64,
    /// The destination was given with the call (not the connected peer).
    pub explicit: bool,
    pub dst: Option<Endpoint>,
    pub src: Option<Endpoint>,
    /// A DNS query's message as read (`None`: a flow).
    pub dns: Option<Query>,
}

fn decode(head: &CallHead, bytes: &[u8]) -> Result<Detail, RecordError> {
    let r = pod_ref::<NetRecord>(bytes)?;
    let payload = &r.payload[..(r.payload_len as usize).min(r.payload.len())];
    Ok(Detail::Net(Send {
        op: head.op,
        fd: r.fd,
        sock_type: r.sock_type,
        protocol: r.protocol,
        family: r.dst.family,
        len: r.len,
        explicit: r.explicit != 0,
        dst: endpoint(&r.dst),
        src: endpoint(&r.src),
        dns: (r.what & what::DNS != 0).then(|| Query::parse(payload, r.protocol == IPPROTO_TCP, r.len)),
    }))
}

const IPPROTO_TCP: u16 = 6;

/// A DNS message's header and first question, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub id: Option<u16>,
    pub flags: u16,
    /// The name as sent.
    pub name: Option<String>,
    /// The name with its ASCII letters lowercased, when that differs from `name` (DNS names are
    /// case-insensitive: a deny list's `pool.minexmr.com` is `Pool.MineXMR.com` too).
    pub name_lower: Option<String>,
    pub qtype: Option<u16>,
    pub qclass: Option<u16>,
    /// Questions in the message (a query has one).
    pub questions: u16,
    /// Why the message could not be read as a DNS query, if so: a send to port 53 that is not
    /// DNS (or is cut) is reported as such, never dropped.
    pub malformed: Option<&'static str>,
    /// What the heuristic found in the name (`suspicion`).
    pub suspicion: Vec<&'static str>,
}

/// The heuristic's thresholds (docs/EVENTS.md, "DNS queries").
pub const LONG_LABEL: usize = 40;
pub const LONG_NAME: usize = 120;
/// Characters of the name below its last two labels from which its entropy is judged, and the
/// entropy (bits per character) from which it is high.
pub const ENTROPY_MIN_CHARS: usize = 32;
pub const HIGH_ENTROPY: f64 = 4.3;
/// A label of this many hexadecimal digits or more carries data (hashes, encoded payloads).
pub const HEX_LABEL: usize = 32;

impl Query {
    /// Reads `msg` (the head of what was sent; `total` bytes were asked to be sent). Over TCP
    /// a message starts with its length, unless the resolver sent that on its own first; more
    /// may follow it in the same send (pipelined queries, padding): the first one is read.
    pub fn parse(msg: &[u8], tcp: bool, total: u64) -> Query {
        let questions = |m: &[u8]| m.get(4..6).map(|c| u16::from_be_bytes([c[0], c[1]]));
        let msg = match msg {
            [hi, lo, rest @ ..] if tcp => {
                let len = u64::from(u16::from_be_bytes([*hi, *lo]));
                // A message alone after its length; or one with more after it, when read so it
                // has the one question a query has and read as is it does not.
                let prefixed = len + 2 == total
                    || (len >= 12 && len + 2 < total && questions(rest) == Some(1) && questions(msg) != Some(1));
                if prefixed { &rest[..rest.len().min(len as usize)] } else { msg }
            }
            _ => msg,
        };
        let mut q = Query::default();
        if msg.len() < 12 {
            q.malformed = Some("shorter than a DNS header");
            return q;
        }
        q.id = Some(u16::from_be_bytes([msg[0], msg[1]]));
        q.flags = u16::from_be_bytes([msg[2], msg[3]]);
        q.questions = u16::from_be_bytes([msg[4], msg[5]]);
        if q.flags & 0x8000 != 0 {
            q.malformed = Some("a response, not a query");
        }
        if q.questions == 0 {
            q.malformed.get_or_insert("no question");
            return q;
        }
        match read_name(msg, 12) {
            Ok((name, end)) => {
                q.suspicion = suspicion(&name);
                if name.bytes().any(|b| b.is_ascii_uppercase()) {
                    q.name_lower = Some(name.to_ascii_lowercase());
                }
                q.name = Some(name);
                if let Some(t) = msg.get(end..end + 4) {
                    q.qtype = Some(u16::from_be_bytes([t[0], t[1]]));
                    q.qclass = Some(u16::from_be_bytes([t[2], t[3]]));
                } else {
                    q.malformed.get_or_insert("question cut short");
                }
            }
            Err(why) => {
                q.malformed.get_or_insert(why);
            }
        }
        q
    }

    fn op_code(&self) -> Cow<'static, str> {
        match (self.flags >> 11) & 0xf {
            0 => Cow::Borrowed("QUERY"),
            1 => Cow::Borrowed("IQUERY"),
            2 => Cow::Borrowed("STATUS"),
            4 => Cow::Borrowed("NOTIFY"),
            5 => Cow::Borrowed("UPDATE"),
            n => Cow::Owned(n.to_string()),
        }
    }

    fn header_flags(&self) -> Vec<&'static str> {
        [(0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"), (0x0020, "AD"), (0x0010, "CD")]
            .into_iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, n)| n)
            .collect()
    }

    /// The name lowercased (`name_lower`), the key the deny lists' are compared with.
    pub fn lower(&self) -> Option<&str> {
        self.name_lower.as_deref().or(self.name.as_deref())
    }

    /// The name's last two labels ("example.com" of "a.b.example.com"), lowercased: not a
    /// public-suffix registered domain (for "x.co.uk" it is "co.uk"), a key a deny list can be
    /// written for.
    pub fn domain(&self) -> Option<&str> {
        let name = self.lower()?;
        let mut dots = name.rmatch_indices('.');
        match (dots.next(), dots.next()) {
            (Some(_), Some((i, _))) => Some(&name[i + 1..]),
            _ => (!name.is_empty()).then_some(name),
        }
    }
}

/// A name at `at` in `msg`: its labels joined with dots (printable ASCII as is, other bytes and
/// dots or backslashes inside a label escaped as `\DDD`, as dig writes them), and where the
/// question goes on. Compression pointers are followed (at most 16, backwards only).
fn read_name(msg: &[u8], mut at: usize) -> Result<(String, usize), &'static str> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(at).ok_or("name cut short")? as usize;
        match len {
            0 => break,
            1..=63 => {
                let label = msg.get(at + 1..at + 1 + len).ok_or("name cut short")?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(b as char);
                    } else {
                        let _ = write!(name, "\\{b:03}");
                    }
                }
                if name.len() > 1024 {
                    return Err("name too long");
                }
                at += 1 + len;
            }
            _ if len & 0xc0 == 0xc0 => {
                let target = ((len & 0x3f) << 8) | *msg.get(at + 1).ok_or("name cut short")? as usize;
                end.get_or_insert(at + 2);
                jumps += 1;
                if jumps > 16 || target >= at {
                    return Err("bad compression pointer");
                }
                at = target;
                continue;
            }
            _ => return Err("bad label length"),
        }
    }
    Ok((name, end.unwrap_or(at + 1)))
}

/// What makes a name look like it carries data (docs/EVENTS.md, "DNS queries"): a label of
/// `LONG_LABEL` characters or more, a name of `LONG_NAME` or more, a label of `HEX_LABEL` hex
/// digits or more, or, below the last two labels, `ENTROPY_MIN_CHARS` characters or more with
/// a Shannon entropy of `HIGH_ENTROPY` bits per character or more.
pub fn suspicion(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.len() >= LONG_LABEL) {
        out.push("long-label");
    }
    if name.len() >= LONG_NAME {
        out.push("long-name");
    }
    if labels.iter().any(|l| l.len() >= HEX_LABEL && l.bytes().all(|b| b.is_ascii_hexdigit())) {
        out.push("hex-label");
    }
    let sub: String = labels[..labels.len().saturating_sub(2)].concat();
    if sub.len() >= ENTROPY_MIN_CHARS && entropy(sub.as_bytes()) >= HIGH_ENTROPY {
        out.push("high-entropy");
    }
    out
}

/// Shannon entropy of `s`'s bytes, in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
}

/// A record type's name (RFC 1035 and later), else its number.
fn type_name(t: u16) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        other => return Cow::Owned(other.to_string()),
    })
}

fn class_name(c: u16) -> Cow<'static, str> {
    match c {
        1 => Cow::Borrowed("IN"),
        3 => Cow::Borrowed("CH"),
        255 => Cow::Borrowed("ANY"),
        other => Cow::Owned(other.to_string()),
    }
}

impl Send {
    /// The call (socketcall's sends are named as the direct calls they stand for).
    pub fn syscall(&self) -> &'static str {
        match self.op {
            op::WRITE => "write",
            op::WRITEV => "writev",
            op::SENDTO => "sendto",
            op::SENDMSG => "sendmsg",
            _ => "sendmmsg",
        }
    }

    pub fn kind(&self) -> Kind {
        if self.dns.is_some() {
            Kind {
                kind: "event",
                category: "network",
                types: &["protocol"],
                action: "dns-query",
                dataset: "docker_listener.network",
            }
        } else {
            Kind {
                kind: "event",
                category: "network",
                types: &["connection", "start"],
                action: "network-flow",
                dataset: "docker_listener.network",
            }
        }
    }

    /// ECS `source`, `destination`, `network`, `dns`.
    pub(crate) fn write_top<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match &self.src {
            // A socket bound to no address (or not bound yet): only its port is known.
            Some(Endpoint::Ip(ip, port)) if ip.is_unspecified() && *port != 0 => {
                m.serialize_entry("source", &PortOut { port: *port })?;
            }
            Some(src @ Endpoint::Ip(_, port)) if *port != 0 => m.serialize_entry("source", &EndpointOut(src))?,
            _ => {}
        }
        if let Some(dst) = &self.dst {
            m.serialize_entry("destination", &EndpointOut(dst))?;
        }
        m.serialize_entry(
            "network",
            &NetworkOut {
                transport: transport(self.sock_type, self.protocol, self.family),
                family: family_name(self.family),
                protocol: self.dns.as_ref().map(|_| "dns"),
                direction: "egress",
                bytes: self.len,
            },
        )?;
        if let Some(q) = &self.dns {
            m.serialize_entry(
                "dns",
                &DnsOut {
                    kind: "query",
                    id: q.id,
                    op_code: q.id.map(|_| q.op_code()),
                    header_flags: q.header_flags(),
                    question: q.name.as_ref().map(|name| QuestionOut {
                        name,
                        qtype: q.qtype.map(type_name),
                        class: q.qclass.map(class_name),
                    }),
                },
            )?;
        }
        Ok(())
    }

    /// `docker_listener.dns` or `docker_listener.flow`, and the socket.
    pub(crate) fn write<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        match &self.dns {
            Some(q) => m.serialize_entry(
                "dns",
                &ListenerDnsOut {
                    domain: q.domain(),
                    name: q.lower(),
                    suspicious: !q.suspicion.is_empty(),
                    suspicion: &q.suspicion,
                    questions: (q.questions > 1).then_some(q.questions),
                    malformed: q.malformed,
                    connected: !self.explicit,
                },
            )?,
            None => m.serialize_entry("flow", &FlowOut { first_send: true, connected: false })?,
        }
        m.serialize_entry("socket", &SocketOut { fd: self.fd })
    }
}

#[derive(Serialize)]
struct NetworkOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    family: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    direction: &'static str,
    bytes: u64,
}

#[derive(Serialize)]
struct DnsOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_code: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    header_flags: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    question: Option<QuestionOut<'a>>,
}

#[derive(Serialize)]
struct QuestionOut<'a> {
    name: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    qtype: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<Cow<'static, str>>,
}

#[derive(Serialize)]
struct ListenerDnsOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    suspicious: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    suspicion: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    questions: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    malformed: Option<&'static str>,
    /// Sent on a connected socket (write, send) rather than to a name given with the call.
    connected: bool,
}

#[derive(Serialize)]
struct FlowOut {
    first_send: bool,
    connected: bool,
}

#[derive(Serialize)]
struct PortOut {
    port: u16,
}

#[derive(Serialize)]
struct SocketOut {
    fd: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as resolvers build it: id, RD, one question.
    pub fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn a_query_is_read_with_its_name_type_and_class() {
        let q = Query::parse(&query("evil.example.com", 28), false, 34);
        assert_eq!(q.id, Some(0x1234));
        assert_eq!(q.name.as_deref(), Some("evil.example.com"));
        assert_eq!((q.qtype, q.qclass), (Some(28), Some(1)));
        assert_eq!(q.malformed, None);
        assert!(q.suspicion.is_empty());
        assert_eq!(q.domain(), Some("example.com"));
        assert_eq!(q.header_flags(), vec!["RD"]);
        assert_eq!(type_name(28), "AAAA");
    }

    #[test]
    fn a_name_is_matched_in_any_case_and_kept_as_sent() {
        let q = Query::parse(&query("Pool.MineXMR.com", 1), false, 34);
        assert_eq!(q.name.as_deref(), Some("Pool.MineXMR.com"), "as sent");
        assert_eq!(q.lower(), Some("pool.minexmr.com"));
        assert_eq!(q.domain(), Some("minexmr.com"));
        assert_eq!(Query::parse(&query("a.example.com", 1), false, 31).lower(), Some("a.example.com"));
    }

    #[test]
    fn over_tcp_a_query_followed_by_more_is_read() {
        let m = query("evil.example.com", 1);
        let framed = |tail: &[u8]| {
            let mut f = (m.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(&m);
            f.extend_from_slice(tail);
            f
        };
        // A byte more, and two pipelined queries in one send.
        for f in [framed(b"x"), framed(&framed(&[]))] {
            let q = Query::parse(&f, true, f.len() as u64);
            assert_eq!(q.name.as_deref(), Some("evil.example.com"), "{f:?}");
            assert_eq!(q.malformed, None);
        }
    }

    #[test]
    fn over_tcp_the_length_prefix_is_skipped_when_it_is_there() {
        let m = query("a.example.org", 1);
        let mut framed = (m.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&m);
        let q = Query::parse(&framed, true, framed.len() as u64);
        assert_eq!(q.name.as_deref(), Some("a.example.org"));
        // Sent without it (the prefix went first, on its own): read as is.
        let q = Query::parse(&m, true, m.len() as u64);
        assert_eq!(q.name.as_deref(), Some("a.example.org"));
    }

    #[test]
    fn anything_else_sent_to_port_53_is_reported_as_malformed_never_dropped() {
        assert_eq!(Query::parse(b"hello", false, 5).malformed, Some("shorter than a DNS header"));
        let mut m = query("x.example.com", 1);
        m.truncate(20);
        let q = Query::parse(&m, false, 100);
        assert_eq!(q.malformed, Some("name cut short"));
        // A pointer loop cannot make the reader spin.
        let mut m = query("x", 1);
        m[12] = 0xc0;
        m[13] = 12;
        assert_eq!(Query::parse(&m, false, m.len() as u64).malformed, Some("bad compression pointer"));
        // Bytes that are not printable in a label are escaped, not passed on raw.
        let mut m = query("ab.example.com", 1);
        m[13] = b'\n';
        m[14] = b'.';
        assert_eq!(Query::parse(&m, false, 0).name.as_deref(), Some("\\010\\046.example.com"));
    }

    #[test]
    fn names_that_carry_data_are_flagged_and_ordinary_ones_are_not() {
        for ordinary in [
            "www.google.com",
            "registry-1.docker.io",
            "ec2-54-23-11-9.eu-west-1.compute.amazonaws.com",
            "kubernetes.default.svc.cluster.local",
            "_http._tcp.deb.debian.org",
            "production-api-gateway.internal.example.com",
            "storage-account-prod-westeurope-01.blob.core.windows.net",
            // Test containers' names, hyphens and digits: about 4.0 bits per character.
            "nslookup-dltest-network-15934-5.example.com",
            "mmsg32-dltest-network-123456-12.example.com",
            "web-7d4b9c8f6d-x2k9p.default.pod.cluster.local",
        ] {
            assert!(suspicion(ordinary).is_empty(), "{ordinary}: {:?}", suspicion(ordinary));
        }
        let tunnel = "aGVsbG8gd29ybGQgdGhpcyBpcyBleGZpbHRyYXRlZCBkYXRh.t.example.com";
        assert_eq!(suspicion(tunnel), vec!["long-label", "high-entropy"]);
        assert_eq!(suspicion("5d41402abc4b2a76b9719d911017c592.example.com"), vec!["hex-label"]);
        let long = format!("{}.example.com", ["abcdefghij"; 12].join("."));
        assert!(suspicion(&long).contains(&"long-name"));
    }

    #[test]
    fn the_domain_is_the_last_two_labels() {
        let q = |n: &str| Query { name: Some(n.into()), ..Query::default() };
        assert_eq!(q("a.b.c.example.net").domain(), Some("example.net"));
        assert_eq!(q("localhost").domain(), Some("localhost"));
        assert_eq!(q("").domain(), None);
    }
}
