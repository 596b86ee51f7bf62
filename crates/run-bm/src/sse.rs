//! Incremental server-sent-events framing (spec D.4).
//!
//! Bytes arrive in whatever network chunks the server and the kernel produce. The parser
//! keeps the unfinished tail in one reusable buffer, cuts complete messages at blank
//! lines (`\n\n` or `\r\n\r\n`) and hands the `data:` payload of each message to a
//! callback, without copying when the message is a single `data:` line (the usual case).
//! Comments (`: ping`) and `data: [DONE]` are skipped; `event:`, `id:` and `retry:`
//! lines are ignored. A message with several `data:` lines yields the lines joined by
//! `\n`, as the SSE standard says. A line with no field name is passed on as a payload
//! (vLLM's client parses it as JSON too).
//!
//! Memory is bounded: a message still unfinished after [`MAX_MESSAGE_BYTES`] (a server
//! that never sends the blank line) is an error; the buffer never holds more than the
//! limit plus one network read.
//! The parser also notes whether the stream's `data: [DONE]` arrived.

/// Largest SSE message accepted (a completion chunk is a few hundred bytes).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// A message grew past the bound without ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an SSE message exceeded {limit} bytes without ending (no blank line)")]
pub struct Oversized {
    pub limit: usize,
}

/// Incremental SSE parser. One per response; no allocation after the first few messages.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    scratch: Vec<u8>,
    done: bool,
    limit: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_limit(MAX_MESSAGE_BYTES)
    }

    /// A parser that accepts messages of at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseParser {
            buf: Vec::with_capacity(4096),
            scratch: Vec::new(),
            done: false,
            limit,
        }
    }

    /// Feed bytes read from the body; `on_data` gets each complete message's payload.
    /// Fails with `E::from(Oversized)` when an unfinished message passes the limit.
    pub fn feed<E: From<Oversized>>(
        &mut self,
        data: &[u8],
        mut on_data: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let SseParser {
            buf,
            scratch,
            done,
            limit,
        } = self;
        if buf.is_empty() {
            let consumed = process_complete(data, scratch, done, &mut on_data)?;
            let rest = &data[consumed..];
            if rest.len() > *limit {
                return Err(Oversized { limit: *limit }.into());
            }
            buf.extend_from_slice(rest);
        } else {
            // The buffer holds at most `limit` bytes plus one read.
            buf.extend_from_slice(data);
            let consumed = process_complete(buf, scratch, done, &mut on_data)?;
            buf.drain(..consumed);
            if buf.len() > *limit {
                buf.clear();
                buf.shrink_to(4096);
                return Err(Oversized { limit: *limit }.into());
            }
        }
        Ok(())
    }

    /// End of the body: whatever is left is one last message (a stream whose final
    /// separator was cut off).
    pub fn finish<E>(&mut self, mut on_data: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let SseParser {
            buf, scratch, done, ..
        } = self;
        let rest = std::mem::take(buf);
        let r = handle_message(&rest, scratch, done, &mut on_data);
        *buf = rest;
        buf.clear();
        r
    }

    /// Whether `data: [DONE]` was received.
    pub fn saw_done(&self) -> bool {
        self.done
    }

    /// Bytes waiting for the end of their message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Handle every complete message of `data`; returns the bytes consumed.
fn process_complete<E>(
    data: &[u8],
    scratch: &mut Vec<u8>,
    done: &mut bool,
    on_data: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<usize, E> {
    let mut pos = 0;
    while let Some((end, sep_len)) = find_separator(&data[pos..]) {
        handle_message(&data[pos..pos + end], scratch, done, on_data)?;
        pos += end + sep_len;
    }
    Ok(pos)
}

/// Position and length of the first blank-line separator.
fn find_separator(data: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &data[from..]) {
        let i = from + i;
        match (data.get(i + 1), data.get(i + 2)) {
            (Some(b'\n'), _) => return Some((i, 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((i, 3)),
            (None, _) | (Some(b'\r'), None) => return None,
            _ => from = i + 1,
        }
    }
    None
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// What one line of a message is.
enum Line<'a> {
    Data(&'a [u8]),
    Ignore,
}

fn classify(line: &[u8]) -> Line<'_> {
    let line = trim(line);
    if line.is_empty() || line[0] == b':' {
        return Line::Ignore;
    }
    if let Some(rest) = line.strip_prefix(b"data:") {
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        return Line::Data(rest);
    }
    for field in [&b"event:"[..], b"id:", b"retry:"] {
        if line.starts_with(field) {
            return Line::Ignore;
        }
    }
    Line::Data(line)
}

fn handle_message<E>(
    msg: &[u8],
    scratch: &mut Vec<u8>,
    done: &mut bool,
    on_data: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let msg = trim(msg);
    if msg.is_empty() {
        return Ok(());
    }
    let payload: &[u8] = if memchr::memchr(b'\n', msg).is_none() {
        match classify(msg) {
            Line::Data(d) => d,
            Line::Ignore => return Ok(()),
        }
    } else {
        scratch.clear();
        let mut n = 0;
        for line in msg.split(|&b| b == b'\n') {
            if let Line::Data(d) = classify(line) {
                if n > 0 {
                    scratch.push(b'\n');
                }
                scratch.extend_from_slice(d);
                n += 1;
            }
        }
        if n == 0 {
            return Ok(());
        }
        scratch
    };
    let payload = trim(payload);
    if payload == b"[DONE]" {
        *done = true;
        return Ok(());
    }
    if payload.is_empty() || *done {
        return Ok(());
    }
    on_data(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum E {
        Big,
        Bad,
    }

    impl From<Oversized> for E {
        fn from(_: Oversized) -> Self {
            E::Big
        }
    }

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |d| {
                out.push(String::from_utf8(d.to_vec()).unwrap());
                Ok::<(), E>(())
            })
            .unwrap();
        }
        p.finish(|d| {
            out.push(String::from_utf8(d.to_vec()).unwrap());
            Ok::<(), E>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn splits_messages_across_reads() {
        let out = collect(&[
            b"data: {\"a\":1}\n\ndata: {\"b\"",
            b":2}\n",
            b"\n: ping\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(out, vec!["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn crlf_multiline_and_trailing_message() {
        let out = collect(&[b"data: 1\r\n\r\nevent: x\ndata: 2\ndata: 3\n\nid: 4\n\ndata: 5"]);
        assert_eq!(out, vec!["1", "2\n3", "5"]);
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let whole: &[u8] = b"data: {\"x\":\"\xc3\xa9\"}\n\ndata:{\"y\":2}\n\n\n\ndata: [DONE]\n\n";
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(collect(&bytes), collect(&[whole]));
        assert_eq!(collect(&[whole]).len(), 2);
    }

    #[test]
    fn callback_error_stops() {
        let mut p = SseParser::new();
        let r = p.feed(b"data: 1\n\ndata: 2\n\n", |d| {
            if d == b"1" {
                Err(E::Bad)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(E::Bad));
    }

    #[test]
    fn done_is_noted_and_ends_the_stream() {
        let mut p = SseParser::new();
        let mut n = 0;
        p.feed(b"data: 1\n\ndata: [DONE]\n\ndata: 2\n\n", |_| {
            n += 1;
            Ok::<(), E>(())
        })
        .unwrap();
        assert!(p.saw_done());
        assert_eq!(n, 1, "nothing after [DONE] is a payload");
        assert!(!SseParser::new().saw_done());
    }

    #[test]
    fn unterminated_message_is_bounded() {
        // One endless line fed in pieces: fails once past the limit, holding no more.
        let mut p = SseParser::with_limit(1000);
        let piece = [b'a'; 300];
        let mut fed = 0;
        let r = loop {
            match p.feed(&piece, |_| Ok::<(), E>(())) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
            assert!(fed < 10);
        };
        assert_eq!(r, E::Big);
        assert_eq!(p.pending(), 0, "the buffer is released");
        // A single oversized read fails at once too.
        let mut p = SseParser::with_limit(1000);
        assert_eq!(p.feed(&[b'b'; 5000], |_| Ok::<(), E>(())), Err(E::Big));
        // Messages up to the limit pass, even when split across reads.
        let mut p = SseParser::with_limit(1000);
        let mut msg = b"data: ".to_vec();
        msg.extend_from_slice(&[b'c'; 990]);
        msg.extend_from_slice(b"\n\n");
        let mut got = 0;
        for part in msg.chunks(100) {
            p.feed(part, |d| {
                got = d.len();
                Ok::<(), E>(())
            })
            .unwrap();
        }
        assert_eq!(got, 990);
    }
}
