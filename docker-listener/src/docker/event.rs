//! One Docker event: its raw bytes, kept exactly as Docker sent them, plus the few fields the
//! daemon needs (time for the resume cursor, type/action for filtering and the container
//! registry), read without building a JSON tree.
use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// A Docker event as received: `raw` is the JSON object, byte for byte, without the newline.
/// The text fields point into `raw` (no allocation) unless Docker escaped them.
#[derive(Debug, Clone)]
pub struct DockerEvent {
    pub raw: Bytes,
    /// `timeNano`, or `time` * 1e9 when Docker sent no `timeNano`; 0 when neither is present.
    pub time_nano: i64,
    kind: Text,
    action: Text,
    actor_id: Text,
    /// Whether Docker sent the legacy `status` field (API < 1.52 does for container and image
    /// events).
    pub has_status: bool,
    /// `Actor.Attributes.image`, raw JSON, for the legacy `from` field.
    legacy_from: Text,
    /// `encode::event_hash` of `raw`, computed once: the resume cursor and the duplicate check
    /// both use it.
    pub hash: u64,
}

/// A string field of the event: a byte range of `raw` when Docker sent it without escapes (the
/// common case, no allocation), else the unescaped copy.
#[derive(Debug, Clone, Default)]
enum Text {
    #[default]
    Absent,
    Span(u32, u32),
    Owned(Box<str>),
}

impl Text {
    fn new(field: Option<&str>, raw: &str) -> Text {
        let Some(s) = field else { return Text::Absent };
        let base = raw.as_ptr() as usize;
        let start = (s.as_ptr() as usize).wrapping_sub(base);
        if start <= raw.len() && start + s.len() <= raw.len() {
            Text::Span(start as u32, (start + s.len()) as u32)
        } else {
            Text::Owned(s.into())
        }
    }

    fn from_cow(field: Option<Str<'_>>, raw: &str) -> Text {
        match field.map(|s| s.0) {
            None => Text::Absent,
            Some(Cow::Borrowed(s)) => Text::new(Some(s), raw),
            Some(Cow::Owned(s)) => Text::Owned(s.into_boxed_str()),
        }
    }

    fn get<'a>(&'a self, raw: &'a [u8]) -> Option<&'a str> {
        match self {
            Text::Absent => None,
            // Spans were cut from a validated &str at char boundaries.
            Text::Span(a, b) => std::str::from_utf8(&raw[*a as usize..*b as usize]).ok(),
            Text::Owned(s) => Some(s),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("not a JSON object (starts with {0:?})")]
    NotAnObject(char),
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// A string borrowed from the input unless it holds escapes. serde's `borrow` does not reach
/// through `Option<Cow<str>>` (serde-rs/serde#2016): it would allocate every value; through this
/// newtype it borrows.
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "Type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(rename = "Action", borrow, default)]
    action: Option<Str<'a>>,
    #[serde(rename = "Actor", borrow, default)]
    actor: Option<ActorMeta<'a>>,
    #[serde(default)]
    status: Option<serde::de::IgnoredAny>,
    #[serde(rename = "timeNano", default)]
    time_nano: Option<i64>,
    #[serde(default)]
    time: Option<i64>,
}

#[derive(Deserialize)]
struct ActorMeta<'a> {
    #[serde(rename = "ID", borrow, default)]
    id: Option<Str<'a>>,
    #[serde(rename = "Attributes", borrow, default)]
    attributes: Option<AttributesMeta<'a>>,
}

#[derive(Deserialize)]
struct AttributesMeta<'a> {
    #[serde(borrow, default)]
    image: Option<&'a RawValue>,
}

impl DockerEvent {
    /// Validates `raw` as one UTF-8 JSON object and reads its metadata. The whole object is
    /// parsed (so malformed JSON anywhere is caught) but nothing is copied except the few
    /// fields above.
    pub fn parse(raw: Bytes) -> Result<DockerEvent, EventError> {
        let text = std::str::from_utf8(&raw).map_err(|e| EventError::NotUtf8(e.valid_up_to()))?;
        match text.trim_start().chars().next() {
            Some('{') => {}
            Some(c) => return Err(EventError::NotAnObject(c)),
            None => return Err(EventError::Json("empty".into())),
        }
        let meta: Meta<'_> = serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
        let (actor_id, legacy_from) = match meta.actor {
            Some(a) => {
                (Text::from_cow(a.id, text), Text::new(a.attributes.and_then(|at| at.image).map(RawValue::get), text))
            }
            None => (Text::Absent, Text::Absent),
        };
        let time_nano = meta.time_nano.or_else(|| meta.time.map(|t| t.saturating_mul(1_000_000_000))).unwrap_or(0);
        let kind = Text::from_cow(meta.kind, text);
        let action = Text::from_cow(meta.action, text);
        Ok(DockerEvent {
            time_nano,
            kind,
            action,
            actor_id,
            has_status: meta.status.is_some(),
            legacy_from,
            hash: crate::encode::event_hash(&raw),
            raw,
        })
    }

    /// Docker's `Type`, e.g. "container"; "" when absent.
    pub fn kind(&self) -> &str {
        self.kind.get(&self.raw).unwrap_or("")
    }

    /// Docker's `Action`, e.g. "start" or "exec_start: sh -c ..."; "" when absent.
    pub fn action(&self) -> &str {
        self.action.get(&self.raw).unwrap_or("")
    }

    /// `Actor.ID`; "" when absent.
    pub fn actor_id(&self) -> &str {
        self.actor_id.get(&self.raw).unwrap_or("")
    }

    /// The legacy fields Docker sent before API 1.52, exactly as moby's `events.Log` filled them:
    /// container events get `status`, `id` and `from` (when the image attribute is set), image
    /// events `status` and `id`; other types none. Returns the JSON members to splice in front of
    /// the event's own, or `None` when there is nothing to add.
    pub fn legacy_members(&self) -> Option<String> {
        if self.has_status {
            return None;
        }
        let json = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let status_id = || format!("\"status\":{},\"id\":{}", json(self.action()), json(self.actor_id()));
        match self.kind() {
            "container" => {
                let mut m = status_id();
                if let Some(from) = self.legacy_from.get(&self.raw)
                    && from.starts_with('"')
                    && from != "\"\""
                {
                    m.push_str(",\"from\":");
                    m.push_str(from);
                }
                Some(m)
            }
            "image" => Some(status_id()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"{"status":"create","id":"d6e8","from":"dl-busybox:test","Type":"container","Action":"create","Actor":{"ID":"d6e8","Attributes":{"image":"dl-busybox:test","name":"t1"}},"scope":"local","time":1795792475,"timeNano":1795792475014659607}"#;

    #[test]
    fn reads_metadata_without_touching_raw() {
        let raw = Bytes::from_static(CREATE.as_bytes());
        let ev = DockerEvent::parse(raw.clone()).unwrap();
        assert_eq!(ev.raw, raw);
        assert_eq!(ev.time_nano, 1795792475014659607);
        assert_eq!(ev.kind(), "container");
        assert_eq!(ev.action(), "create");
        assert_eq!(ev.actor_id(), "d6e8");
        assert!(ev.has_status);
        assert_eq!(ev.legacy_members(), None);
    }

    #[test]
    fn legacy_members_follow_moby() {
        let api152 = r#"{"Type":"container","Action":"exec_start: sh -c \"x\"","Actor":{"ID":"abc","Attributes":{"image":"busy\"box","name":"n"}},"scope":"local","time":1,"timeNano":1000000001}"#;
        let ev = DockerEvent::parse(Bytes::from_static(api152.as_bytes())).unwrap();
        assert_eq!(ev.action(), "exec_start: sh -c \"x\"");
        assert_eq!(ev.legacy_members().unwrap(), r#""status":"exec_start: sh -c \"x\"","id":"abc","from":"busy\"box""#);
        let image = r#"{"Type":"image","Action":"tag","Actor":{"ID":"sha256:1","Attributes":{"name":"a:b"}},"time":2}"#;
        let ev = DockerEvent::parse(Bytes::from_static(image.as_bytes())).unwrap();
        assert_eq!(ev.time_nano, 2_000_000_000);
        assert_eq!(ev.legacy_members().unwrap(), r#""status":"tag","id":"sha256:1""#);
        let net = r#"{"Type":"network","Action":"create","Actor":{"ID":"n1","Attributes":{}}}"#;
        assert_eq!(DockerEvent::parse(Bytes::from_static(net.as_bytes())).unwrap().legacy_members(), None);
    }

    #[test]
    fn rejects_what_is_not_one_json_object() {
        for (bad, want) in [
            (&b"[1,2]"[..], "not a JSON object"),
            (b"\"str\"", "not a JSON object"),
            (b"{\"Type\":", "invalid JSON"),
            (b"{\"a\":1} {\"b\":2}", "invalid JSON"),
            (b"{\"a\":\"\xff\"}", "not UTF-8"),
            (b"{\"Type\":5}", "invalid JSON"),
            (b"   ", "invalid JSON"),
        ] {
            let e = DockerEvent::parse(Bytes::copy_from_slice(bad)).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn plain_strings_are_borrowed_not_copied() {
        let ev = DockerEvent::parse(Bytes::from_static(CREATE.as_bytes())).unwrap();
        for t in [&ev.kind, &ev.action, &ev.actor_id, &ev.legacy_from] {
            assert!(matches!(t, Text::Span(..)), "{t:?}");
        }
        let escaped = r#"{"Type":"container","Action":"exec_start: sh -c \"x\"","Actor":{"ID":"a"}}"#;
        let ev = DockerEvent::parse(Bytes::from_static(escaped.as_bytes())).unwrap();
        assert!(matches!(ev.action, Text::Owned(_)));
        assert!(matches!(ev.kind, Text::Span(..)));
    }

    #[test]
    fn unknown_types_and_fields_are_kept() {
        let raw = r#"{"Type":"future-thing","Action":"x","Actor":{"ID":"1"},"extra":{"deep":[1,2,3]},"timeNano":5}"#;
        let ev = DockerEvent::parse(Bytes::from_static(raw.as_bytes())).unwrap();
        assert_eq!(ev.kind(), "future-thing");
        assert_eq!(&ev.raw[..], raw.as_bytes());
    }
}
