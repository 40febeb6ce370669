//! Splits Docker's streamed `/events` body into one buffer per event.
//!
//! Docker writes each event as one line of JSON (Go's `json.Encoder`: the object, then `\n`;
//! newlines inside strings are escaped). HTTP chunk boundaries fall anywhere, so a line may
//! span chunks. Lines that lie inside one chunk are sliced out of it without copying; only a
//! line that straddles chunks is assembled in a buffer.
use bytes::{Buf, Bytes, BytesMut};

/// Something the splitter produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// One line, without its newline (and without a trailing `\r`).
    Line(Bytes),
    /// A line longer than the limit was skipped; `len` bytes were thrown away.
    Oversized { len: usize },
}

#[derive(Debug)]
pub struct LineSplitter {
    partial: BytesMut,
    /// Inside an oversized line: discard until the next newline. Holds the bytes dropped so far.
    discarding: Option<usize>,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> LineSplitter {
        LineSplitter { partial: BytesMut::new(), discarding: None, max_line }
    }

    /// Feeds one chunk; calls `out` for every complete line or skipped oversized line.
    pub fn push(&mut self, mut chunk: Bytes, mut out: impl FnMut(Piece)) {
        // Finish the line carried over from earlier chunks, if any.
        if self.discarding.is_some() || !self.partial.is_empty() {
            match memchr::memchr(b'\n', &chunk) {
                Some(i) => {
                    if let Some(dropped) = self.discarding.take() {
                        out(Piece::Oversized { len: dropped + i });
                    } else if self.partial.len() + i > self.max_line {
                        out(Piece::Oversized { len: self.partial.len() + i });
                        self.partial.clear();
                    } else {
                        self.partial.extend_from_slice(&chunk[..i]);
                        emit(self.partial.split().freeze(), &mut out);
                    }
                    chunk.advance(i + 1);
                }
                None => {
                    self.carry(&chunk);
                    return;
                }
            }
        }
        // Whole lines inside this chunk: zero-copy slices.
        while let Some(i) = memchr::memchr(b'\n', &chunk) {
            let line = chunk.split_to(i);
            chunk.advance(1);
            if line.len() > self.max_line {
                out(Piece::Oversized { len: line.len() });
            } else {
                emit(line, &mut out);
            }
        }
        if !chunk.is_empty() {
            self.carry(&chunk);
        }
    }

    /// Bytes of an unfinished line held at the end of the stream (a stream cut mid-event).
    pub fn pending(&self) -> usize {
        self.partial.len() + self.discarding.unwrap_or(0)
    }

    /// Forgets any unfinished line (after the stream ended).
    pub fn reset(&mut self) {
        self.partial = BytesMut::new();
        self.discarding = None;
    }

    fn carry(&mut self, rest: &[u8]) {
        if let Some(d) = self.discarding.as_mut() {
            *d += rest.len();
        } else if self.partial.len() + rest.len() > self.max_line {
            self.discarding = Some(self.partial.len() + rest.len());
            // Give the memory back rather than keeping a max_line-sized buffer around.
            self.partial = BytesMut::new();
        } else {
            self.partial.extend_from_slice(rest);
        }
    }
}

fn emit(mut line: Bytes, out: &mut impl FnMut(Piece)) {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    if !line.iter().all(u8::is_ascii_whitespace) {
        out(Piece::Line(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Piece>, usize) {
        let mut s = LineSplitter::new(max);
        let mut v = Vec::new();
        for c in chunks {
            s.push(Bytes::copy_from_slice(c), |p| v.push(p));
        }
        (v, s.pending())
    }

    fn line(s: &str) -> Piece {
        Piece::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lines_within_and_across_chunks() {
        let (v, pending) = run(100, &[b"{\"a\":1}\n{\"b\"", b":2}\n\n{\"c\":3}\r\n{\"d\""]);
        assert_eq!(v, vec![line("{\"a\":1}"), line("{\"b\":2}"), line("{\"c\":3}")]);
        assert_eq!(pending, 4);
    }

    #[test]
    fn whole_lines_are_not_copied() {
        let chunk = Bytes::from_static(b"{\"a\":1}\n{\"b\":2}\n");
        let mut s = LineSplitter::new(100);
        let mut ptrs = Vec::new();
        s.push(chunk.clone(), |p| {
            if let Piece::Line(b) = p {
                ptrs.push(b.as_ptr() as usize);
            }
        });
        assert_eq!(ptrs, vec![chunk.as_ptr() as usize, chunk.as_ptr() as usize + 8]);
    }

    #[test]
    fn oversized_lines_are_skipped_and_the_stream_goes_on() {
        let big = vec![b'x'; 50];
        let (v, pending) = run(20, &[b"{\"a\":1}\n", &big, &big, b"yy\n{\"b\":2}\n"]);
        assert_eq!(v, vec![line("{\"a\":1}"), Piece::Oversized { len: 102 }, line("{\"b\":2}")]);
        assert_eq!(pending, 0);
        let (v, _) = run(5, &[b"0123456789\nab\n"]);
        assert_eq!(v, vec![Piece::Oversized { len: 10 }, line("ab")]);
        let (v, _) = run(5, &[b"012", b"345\nab\n"]);
        assert_eq!(v, vec![Piece::Oversized { len: 6 }, line("ab")]);
    }

    proptest! {
        /// However the stream is cut into chunks, the same lines come out.
        #[test]
        fn chunking_does_not_matter(lines in prop::collection::vec("[a-z{}:\"0-9 ]{1,40}", 0..20), cuts in prop::collection::vec(0usize..400, 0..10)) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let (v, pending) = run(1000, &chunks);
            let want: Vec<Piece> = lines.iter().filter(|l| !l.trim().is_empty()).map(|l| line(l)).collect();
            prop_assert_eq!(v, want);
            prop_assert_eq!(pending, 0);
        }
    }
}
