//! The fast path of [`crate::chunk::decode_chunk`]: one validating pass over an SSE
//! payload that extracts what the metrics need, without serde's per-key machinery (it
//! made up about half of the client's CPU per streamed token).
//!
//! It only ever answers for payloads it fully understands, and then exactly as the serde
//! decoder would: the payload is one JSON object, every byte of it checked (strings,
//! escapes, UTF-8, numbers, literals, nesting), `choices` null or an array, `usage` null
//! or an object of plain unsigned integers (or nulls), no error field. Anything else (an
//! error event, a duplicate key of interest, an escaped key, a surrogate escape, a float
//! token count, malformed JSON, …) returns `None` and the serde decoder decides, so
//! results and error messages never differ. A differential test checks this on a large
//! set of generated and mutated payloads.

use crate::chunk::{ChunkInfo, Usage};

/// Deepest nesting handled here (serde_json's own limit is 128).
const MAX_DEPTH: u32 = 64;

/// Bytes that may appear in a string as they are: printable ASCII but `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c < 0x80 {
        t[c] = c != b'"' as usize && c != b'\\' as usize;
        c += 1;
    }
    t
};

/// Decode `payload`, appending the generated text to `text` when given; `None`: not
/// handled here (then `text` is as it was).
pub fn scan_chunk(payload: &[u8], mut text: Option<&mut String>) -> Option<ChunkInfo> {
    let before = text.as_ref().map_or(0, |t| t.len());
    let mut p = Scanner { b: payload, i: 0 };
    let r = p.top(text.as_deref_mut());
    if r.is_none() {
        if let Some(t) = text {
            t.truncate(before);
        }
    }
    r
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// A string token: raw bytes between the quotes, and whether it has escapes.
struct Str {
    start: usize,
    end: usize,
    escaped: bool,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn top(&mut self, mut text: Option<&mut String>) -> Option<ChunkInfo> {
        let mut info = ChunkInfo::default();
        let (mut seen_choices, mut seen_usage) = (false, false);
        self.ws();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_none() {
            loop {
                self.eat(b'"')?;
                let key = self.string()?;
                if key.escaped {
                    return None;
                }
                self.ws();
                self.eat(b':')?;
                self.ws();
                match &self.b[key.start..key.end] {
                    b"choices" => {
                        if std::mem::replace(&mut seen_choices, true) {
                            return None;
                        }
                        info.n_choices = self.choices(text.as_deref_mut())?;
                    }
                    b"usage" => {
                        if std::mem::replace(&mut seen_usage, true) {
                            return None;
                        }
                        info.usage = self.usage()?;
                    }
                    b"error" | b"detail" => {
                        // An error event: the serde decoder builds its message.
                        self.null()?;
                    }
                    b"object" => {
                        if self.peek()? == b'"' {
                            self.i += 1;
                            let s = self.string()?;
                            if s.escaped || &self.b[s.start..s.end] == b"error" {
                                return None;
                            }
                        } else {
                            self.value(0)?;
                        }
                    }
                    _ => self.value(0)?,
                }
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.ws();
                    }
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(info)
    }

    /// `null` only.
    fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// `choices`: null or an array; the first element's text goes to `text`.
    fn choices(&mut self, text: Option<&mut String>) -> Option<usize> {
        match self.peek()? {
            b'n' => {
                self.null()?;
                Some(0)
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(0);
                }
                match self.peek()? {
                    b'{' => self.choice(text)?,
                    b'n' => self.null()?,
                    b'"' => {
                        self.i += 1;
                        self.string()?;
                    }
                    _ => return None,
                }
                let mut n = 1;
                loop {
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            self.ws();
                            self.value(1)?;
                            n += 1;
                        }
                        b']' => {
                            self.i += 1;
                            return Some(n);
                        }
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// The first choice object: `text`, or a chat `delta`'s content, appended.
    fn choice(&mut self, mut text: Option<&mut String>) -> Option<()> {
        self.each_member(2, |s, key| match (key, text.as_deref_mut()) {
            (b"text", Some(sink)) => s.text_value(sink),
            (b"delta", Some(sink)) => match s.peek()? {
                b'n' => s.null(),
                b'{' => s.each_member(3, |s, key| match key {
                    b"content" | b"reasoning_content" | b"reasoning" => s.text_value(&mut *sink),
                    _ => s.value(4),
                }),
                _ => None,
            },
            _ => s.value(3),
        })
    }

    /// A string (appended) or null.
    fn text_value(&mut self, sink: &mut String) -> Option<()> {
        match self.peek()? {
            b'n' => self.null(),
            b'"' => {
                self.i += 1;
                let s = self.string()?;
                let raw = &self.b[s.start..s.end];
                if s.escaped {
                    unescape_into(raw, sink)
                } else {
                    // Validated UTF-8 by string().
                    sink.push_str(std::str::from_utf8(raw).ok()?);
                    Some(())
                }
            }
            _ => None,
        }
    }

    /// `usage`: null, or an object whose token counts are plain unsigned integers or null.
    fn usage(&mut self) -> Option<Option<Usage>> {
        if self.peek()? == b'n' {
            self.null()?;
            return Some(None);
        }
        if self.peek()? != b'{' {
            return None;
        }
        let mut u = Usage::default();
        let (mut p_seen, mut c_seen) = (false, false);
        self.each_member(2, |s, key| {
            let (seen, slot) = match key {
                b"prompt_tokens" => (&mut p_seen, &mut u.prompt_tokens),
                b"completion_tokens" => (&mut c_seen, &mut u.completion_tokens),
                _ => return s.value(3),
            };
            if std::mem::replace(seen, true) {
                return None; // serde: duplicate field
            }
            *slot = s.count()?;
            Some(())
        })?;
        Some(Some(u))
    }

    /// A token count: null, or digits only that fit a u64.
    fn count(&mut self) -> Option<Option<u64>> {
        if self.peek()? == b'n' {
            self.null()?;
            return Some(None);
        }
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        std::str::from_utf8(digits)
            .ok()?
            .parse::<u64>()
            .ok()
            .map(Some)
    }

    /// Members of the object at the cursor (`{` not yet consumed): `f(self, key)` reads
    /// each value. Escaped keys are not handled.
    fn each_member(
        &mut self,
        depth: u32,
        mut f: impl FnMut(&mut Self, &[u8]) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let key = self.string()?;
            if key.escaped {
                return None;
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            let b = self.b;
            f(self, &b[key.start..key.end])?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, validated and skipped.
    fn value(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b'{' => self.each_member(depth + 1, |s, _| s.value(depth + 1)),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| {
            let start = s.i;
            while let Some(b'0'..=b'9') = s.peek() {
                s.i += 1;
            }
            s.i - start
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        // serde_json rejects a number followed directly by more number-like bytes.
        match self.peek() {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') => None,
            _ => Some(()),
        }
    }

    /// The rest of a string after its opening quote: validated (no control characters,
    /// known escapes without surrogates, UTF-8); the cursor ends after the closing quote.
    #[inline(always)]
    fn string(&mut self) -> Option<Str> {
        // Plain ASCII up to the closing quote: the usual key or value, inline.
        let start = self.i;
        let end = skip_plain(self.b, start);
        if self.b.get(end) == Some(&b'"') {
            self.i = end + 1;
            return Some(Str {
                start,
                end,
                escaped: false,
            });
        }
        self.string_slow(start)
    }

    /// [`Self::string`] with escapes or non-ASCII bytes.
    #[cold]
    #[inline(never)]
    fn string_slow(&mut self, start: usize) -> Option<Str> {
        self.i = start;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            self.i = skip_plain(self.b, self.i);
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            let s = std::str::from_utf8(hex).ok()?;
                            let v = u32::from_str_radix(s, 16).ok()?;
                            if !hex.iter().all(u8::is_ascii_hexdigit)
                                || (0xD800..0xE000).contains(&v)
                            {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {
                    non_ascii = true;
                    self.i += 1;
                }
            }
        }
        let end = self.i;
        self.i += 1;
        if non_ascii {
            std::str::from_utf8(&self.b[start..end]).ok()?;
        }
        Some(Str {
            start,
            end,
            escaped,
        })
    }
}

/// The first position from `i` on that is not a plain string byte (printable ASCII but
/// `"` and `\\`): eight bytes at a time, then byte by byte.
#[inline]
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = b.get(i..i + 8) {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let q = x ^ (ONES * u64::from(b'"'));
        let bs = x ^ (ONES * u64::from(b'\\'));
        // High bit of a byte set when it is '"', '\\', below 0x20 or non-ASCII (the usual
        // zero-byte trick; a borrow can only flag bytes after a real hit).
        let hit = ((q.wrapping_sub(ONES) & !q)
            | (bs.wrapping_sub(ONES) & !bs)
            | (x.wrapping_sub(ONES * 0x20) & !x)
            | x)
            & HIGH;
        if hit != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if !PLAIN[c as usize] {
            break;
        }
        i += 1;
    }
    i
}

/// Append the unescaped form of a validated string body.
fn unescape_into(raw: &[u8], out: &mut String) -> Option<()> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut chars = s.char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars.next()?;
        out.push(match e {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let mut v = 0u32;
                for _ in 0..4 {
                    v = v * 16 + chars.next()?.1.to_digit(16)?;
                }
                char::from_u32(v)?
            }
            _ => return None,
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::decode_chunk_serde;
    use rand::{Rng, SeedableRng};

    fn corpus() -> Vec<Vec<u8>> {
        [
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" x","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":64,"completion_tokens":3,"total_tokens":67}}"#,
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"a\"b\\c\n\u00e9\u4e2d","reasoning_content":"r","reasoning":null}}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#,
            r#" { "choices" : [ { "text" : "é ü 中文 🚀" } , {"text":"second"} , null , 3 ] , "usage" : { } } "#,
            r#"{"choices":null,"usage":null}"#,
            r#"{"choices":[null],"x":[1,-2.5e-3,true,false,null,{"a":[{}]}]}"#,
            r#"{"choices":["s"]}"#,
            r#"{"error":{"object":"error","message":"token id 300000 out of vocabulary","code":400}}"#,
            r#"{"object":"error","message":"boom","type":"X"}"#,
            r#"{"detail":"Internal error"}"#,
            r#"{"error":null,"detail":null,"choices":[{"text":"t"}]}"#,
            r#"{"choices":[{"text":"a"}],"choices":[{"text":"b"}]}"#,
            r#"{"usage":{"completion_tokens":1.0}}"#,
            r#"{"usage":{"completion_tokens":-0}}"#,
            r#"{"usage":{"completion_tokens":18446744073709551616}}"#,
            r#"{"usage":{"completion_tokens":1,"completion_tokens":2}}"#,
            r#"{"usage":[1,2]}"#,
            r#"{"ch\u006fices":[{"text":"k"}]}"#,
            r#"{"choices":[{"text":"\ud83d\ude80"}]}"#,
            r#"{"choices":[{"text":5}]}"#,
            r#"{"choices":{"text":5}}"#,
            r#"{"choices":[{"delta":"x"}]}"#,
            r#"{"choices":[{"text":"a","text":"b","delta":{"content":"c"}}]}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#"{} x"#,
            r#"{"choices":["#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    /// The fast path with its fallback must equal the serde decoder exactly; returns
    /// whether the fast path answered.
    fn check(payload: &[u8]) -> bool {
        let mut answered = false;
        for keep in [false, true] {
            let mut a = String::from("pre");
            let mut b = String::from("pre");
            let fast = match scan_chunk(payload, keep.then_some(&mut a)) {
                Some(info) => {
                    answered = true;
                    Ok(info)
                }
                None => {
                    assert_eq!(a, "pre", "text untouched on fallback");
                    decode_chunk_serde(payload, keep.then_some(&mut a)).map_err(|_| ())
                }
            };
            let slow = decode_chunk_serde(payload, keep.then_some(&mut b)).map_err(|_| ());
            assert_eq!(
                fast,
                slow,
                "{:?} keep={keep}",
                String::from_utf8_lossy(payload)
            );
            if slow.is_ok() {
                assert_eq!(a, b, "{:?}", String::from_utf8_lossy(payload));
            }
        }
        answered
    }

    #[test]
    fn plain_runs_stop_at_every_special_byte() {
        for special in [b'"', b'\\', 0x00, 0x1f, 0x7f + 1, 0xff] {
            for at in 0..20 {
                let mut v = vec![b'a'; 20];
                v[at] = special;
                assert_eq!(skip_plain(&v, 0), at, "byte {special:#x} at {at}");
            }
        }
        assert_eq!(skip_plain(b"abcdefghijklmnopq", 3), 17);
        assert_eq!(skip_plain(b" ~", 0), 2, "0x20 and 0x7e are plain");
    }

    #[test]
    fn the_usual_chunks_take_the_fast_path() {
        let c = corpus();
        let mut t = String::new();
        let info = scan_chunk(&c[0], Some(&mut t)).expect("vLLM completions chunk");
        assert_eq!((info.n_choices, t.as_str()), (1, " x"));
        assert_eq!(info.usage.unwrap().completion_tokens, Some(3));
        assert!(scan_chunk(&c[1], None).is_some(), "chat role delta");
        assert!(scan_chunk(&c[2], None).is_some(), "escapes");
        assert!(scan_chunk(&c[3], None).is_some(), "usage message");
        // Error events go to the serde decoder.
        for p in &c[8..=10] {
            assert!(scan_chunk(p, None).is_none());
        }
    }

    #[test]
    fn identical_to_serde_on_a_corpus() {
        for p in corpus() {
            check(&p);
        }
    }

    #[test]
    fn identical_to_serde_on_mutated_payloads() {
        let alphabet: &[u8] = b"{}[],:\"\\ u0123456789aeEfnrtlsx.-+/\x00\x1f\x7f\xc3\xa9\xff\xe4";
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let corpus = corpus();
        let mut answered = 0;
        for _ in 0..60_000 {
            let mut p = corpus[rng.gen_range(0..corpus.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                if p.is_empty() {
                    break;
                }
                let at = rng.gen_range(0..p.len());
                match rng.gen_range(0..4) {
                    0 => p[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    1 => p.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                    2 => {
                        p.remove(at);
                    }
                    _ => p.truncate(at),
                }
            }
            answered += usize::from(check(&p));
        }
        // The mutations keep many payloads valid: the fast path is really compared.
        assert!(answered > 5_000, "fast path answered {answered}");
    }
}
