//! Reading one streamed completion: the JSON of each SSE payload, and the per-request
//! timing record built from it (spec B.2, D.4, D.5).
//!
//! A payload is decoded with a streaming serde visitor that only looks at what the
//! metrics need: the number of `choices`, `choices[0].text` (copied only when the caller
//! keeps the text), `usage` and error fields. Every other field is skipped without
//! allocating.

use std::fmt;
use std::time::Instant;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use pd_common::bench::ChunkTimeline;

/// Token counts of a `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

/// What one SSE payload says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkInfo {
    /// Length of the `choices` array (0 if absent or null).
    pub n_choices: usize,
    /// The `usage` object, if present and not null.
    pub usage: Option<Usage>,
    /// An error event inside a 200 stream: `{"error": …}`, `{"detail": …}` or
    /// `{"object": "error", "message": …}`.
    pub error: Option<String>,
}

/// Decode one payload. `text`, when given, gets `choices[0].text` appended (or a chat
/// delta's content). The usual chunks take the validating fast path of
/// [`crate::chunk_scan`]; everything else (errors, unusual shapes) the serde decoder.
pub fn decode_chunk(
    payload: &[u8],
    mut text: Option<&mut String>,
) -> Result<ChunkInfo, serde_json::Error> {
    if let Some(info) = crate::chunk_scan::scan_chunk(payload, text.as_deref_mut()) {
        return Ok(info);
    }
    decode_chunk_serde(payload, text)
}

/// [`decode_chunk`] through serde only (the reference the fast path is tested against).
pub fn decode_chunk_serde(
    payload: &[u8],
    text: Option<&mut String>,
) -> Result<ChunkInfo, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let info = ChunkSeed { text }.deserialize(&mut de)?;
    de.end()?;
    Ok(info)
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Choices,
    Usage,
    Error,
    Object,
    Message,
    Detail,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ChoiceField {
    Text,
    /// Chat streams: `{"delta": {"content": …}}`.
    Delta,
    #[serde(other)]
    Other,
}

struct ChunkSeed<'s> {
    text: Option<&'s mut String>,
}

impl<'de> DeserializeSeed<'de> for ChunkSeed<'_> {
    type Value = ChunkInfo;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ChunkInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChunkSeed<'_> {
    type Value = ChunkInfo;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChunkInfo, A::Error> {
        let mut info = ChunkInfo::default();
        let mut text = self.text;
        let mut error_object = false;
        let mut message: Option<serde_json::Value> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Choices => {
                    info.n_choices = map.next_value_seed(ChoicesSeed {
                        text: text.as_deref_mut(),
                    })?
                }
                Field::Usage => info.usage = map.next_value::<Option<Usage>>()?,
                Field::Error => {
                    let v: serde_json::Value = map.next_value()?;
                    if !v.is_null() {
                        info.error = Some(error_message(&v));
                    }
                }
                Field::Object => error_object = map.next_value_seed(IsErrorSeed)?,
                Field::Message => message = Some(map.next_value()?),
                Field::Detail => {
                    let v: serde_json::Value = map.next_value()?;
                    if !v.is_null() && info.error.is_none() {
                        info.error = Some(error_message(&v));
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if error_object && info.error.is_none() {
            info.error = Some(
                message
                    .as_ref()
                    .map(error_message)
                    .unwrap_or_else(|| "error event without a message".to_string()),
            );
        }
        Ok(info)
    }
}

/// The readable message of an error value: `{"message": …}`, `{"detail": …}`, a string,
/// or the JSON text.
pub fn error_message(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => {
            for key in ["message", "detail", "error"] {
                if let Some(inner) = m.get(key) {
                    if !inner.is_null() {
                        return error_message(inner);
                    }
                }
            }
            v.to_string()
        }
        other => other.to_string(),
    }
}

struct IsErrorSeed;

impl<'de> DeserializeSeed<'de> for IsErrorSeed {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IsErrorSeed {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == "error")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

struct ChoicesSeed<'s> {
    text: Option<&'s mut String>,
}

impl<'de> DeserializeSeed<'de> for ChoicesSeed<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of choices")
    }
    fn visit_unit<E: de::Error>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        if seq
            .next_element_seed(ChoiceSeed { text: self.text })?
            .is_none()
        {
            return Ok(0);
        }
        let mut n = 1;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

struct ChoiceSeed<'s> {
    text: Option<&'s mut String>,
}

impl<'de> DeserializeSeed<'de> for ChoiceSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChoiceSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a choice object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut text = self.text;
        while let Some(key) = map.next_key::<ChoiceField>()? {
            match (key, text.as_deref_mut()) {
                (ChoiceField::Text, Some(sink)) => map.next_value_seed(AppendText(sink))?,
                (ChoiceField::Delta, Some(sink)) => map.next_value_seed(DeltaSeed(sink))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// A chat `delta`: its `content` (and reasoning text, so output can be counted by a
/// tokenizer when the server sends no usage) is appended.
struct DeltaSeed<'s>(&'s mut String);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum DeltaField {
    Content,
    ReasoningContent,
    Reasoning,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for DeltaSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a delta object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = self.0;
        while let Some(key) = map.next_key::<DeltaField>()? {
            match key {
                DeltaField::Content | DeltaField::ReasoningContent | DeltaField::Reasoning => {
                    map.next_value_seed(AppendText(&mut *sink))?
                }
                DeltaField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct AppendText<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for AppendText<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AppendText<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Why a stream failed after a 200 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("invalid JSON in SSE event ({detail}): {excerpt}")]
    Json { detail: String, excerpt: String },
    #[error("server sent an error event: {0}")]
    ErrorEvent(String),
    #[error(transparent)]
    Oversized(#[from] crate::sse::Oversized),
    #[error(
        "the server sent more than {limit} chunks (far more than max_tokens): stream abandoned"
    )]
    TooManyChunks { limit: usize },
}

/// Timing and token record of one streamed request.
///
/// Timestamps are monotonic [`Instant`]s. One "chunk event" is one SSE message with a
/// non-empty `choices` array, whatever the number of tokens in it (spec B.2).
#[derive(Debug, Clone)]
pub struct StreamRecorder {
    /// Taken right before the request is issued.
    pub st: Instant,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    /// Chunk events: gaps (vLLM's `itl`) and tokens carried by each chunk (from
    /// per-chunk `usage` when the server sends it, else 1).
    pub chunks: ChunkTimeline,
    /// True once a chunk carried running usage (`continuous_usage_stats`).
    pub continuous_usage: bool,
    running_tokens: u64,
    /// `usage.completion_tokens` / `usage.prompt_tokens` of the final usage message.
    pub completion_tokens: Option<u64>,
    pub prompt_tokens: Option<u64>,
    /// Generated text, when kept.
    pub text: Option<String>,
    /// Print new text to stdout as it arrives (smoke test).
    pub echo: bool,
    /// Most chunk events accepted (bounds the memory a runaway stream can take).
    pub max_chunks: usize,
    /// Tokens the response must carry (`max_tokens` sent with `ignore_eos`): a stream
    /// that reports fewer is incomplete. `None`: no such check.
    pub expect_tokens: Option<u64>,
    /// Chunk events that arrived in the same network read as the previous one.
    pub same_read: u64,
    /// Chunk events expected (the request's `max_tokens`; 0: unknown).
    pub expected_chunks: usize,
}

impl StreamRecorder {
    /// A recorder expecting about `expected_chunks` chunks; keeps the text if `keep_text`.
    pub fn new(st: Instant, expected_chunks: usize, keep_text: bool) -> Self {
        StreamRecorder {
            st,
            first: None,
            last: None,
            chunks: ChunkTimeline::with_capacity(expected_chunks.min(1 << 16)),
            continuous_usage: false,
            running_tokens: 0,
            completion_tokens: None,
            prompt_tokens: None,
            text: keep_text.then(String::new),
            echo: false,
            max_chunks: expected_chunks.saturating_mul(2).saturating_add(1024),
            expect_tokens: None,
            same_read: 0,
            expected_chunks,
        }
    }

    /// Number of chunk events so far.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Output tokens the server said it sent: its final usage, else its running usage;
    /// `None` when it reported no usage at all.
    pub fn reported_tokens(&self) -> Option<u64> {
        self.completion_tokens
            .or(self.continuous_usage.then_some(self.running_tokens))
    }

    /// Handle one SSE payload received at `t`.
    pub fn on_payload(&mut self, payload: &[u8], t: Instant) -> Result<(), StreamError> {
        let before = self.text.as_ref().map_or(0, String::len);
        let info = decode_chunk(payload, self.text.as_mut()).map_err(|e| StreamError::Json {
            detail: e.to_string(),
            excerpt: excerpt(payload),
        })?;
        if self.echo {
            if let Some(new) = self.text.as_ref().and_then(|t| t.get(before..)) {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(new.as_bytes());
                let _ = out.flush();
            }
        }
        if let Some(err) = info.error {
            return Err(StreamError::ErrorEvent(err));
        }
        if info.n_choices > 0 {
            if self.chunks.len() >= self.max_chunks {
                return Err(StreamError::TooManyChunks {
                    limit: self.max_chunks,
                });
            }
            let gap = match self.last {
                None => {
                    self.first = Some(t);
                    std::time::Duration::ZERO
                }
                Some(prev) => {
                    // One timestamp per network read: equal means the same read.
                    self.same_read += u64::from(prev == t);
                    t.saturating_duration_since(prev)
                }
            };
            self.last = Some(t);
            let tokens = match info.usage.and_then(|u| u.completion_tokens) {
                Some(c) => {
                    self.continuous_usage = true;
                    let n = c.saturating_sub(self.running_tokens);
                    self.running_tokens = self.running_tokens.max(c);
                    u32::try_from(n).unwrap_or(u32::MAX)
                }
                None => 1,
            };
            self.chunks.push_duration(gap, tokens);
        } else if let Some(u) = info.usage {
            if u.completion_tokens.is_some() {
                self.completion_tokens = u.completion_tokens;
            }
            if u.prompt_tokens.is_some() {
                self.prompt_tokens = u.prompt_tokens;
            }
        }
        Ok(())
    }

    /// TTFT in seconds (0.0 before the first chunk).
    pub fn ttft(&self) -> f64 {
        self.first
            .map_or(0.0, |f| f.saturating_duration_since(self.st).as_secs_f64())
    }

    /// E2E latency in seconds: last chunk event − send time (0.0 without chunks).
    pub fn latency(&self) -> f64 {
        self.last
            .map_or(0.0, |l| l.saturating_duration_since(self.st).as_secs_f64())
    }
}

fn excerpt(payload: &[u8]) -> String {
    let s = String::from_utf8_lossy(&payload[..payload.len().min(200)]);
    if payload.len() > 200 {
        format!("{s}…")
    } else {
        s.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn decodes_only_what_is_needed() {
        let mut text = String::new();
        let info = decode_chunk(
            br#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"Hi \"x\"\n","logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}"#,
            Some(&mut text),
        )
        .unwrap();
        assert_eq!(info.n_choices, 1);
        assert_eq!(info.usage.unwrap().completion_tokens, Some(2));
        assert_eq!(text, "Hi \"x\"\n");
        let info = decode_chunk(
            br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            (info.n_choices, info.usage.unwrap().completion_tokens),
            (0, Some(9))
        );
        let info = decode_chunk(br#"{"choices":null,"usage":null}"#, None).unwrap();
        assert_eq!(info, ChunkInfo::default());
    }

    #[test]
    fn error_events() {
        let info = decode_chunk(
            br#"{"error":{"object":"error","message":"token id 300000 out of vocabulary","code":400}}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            info.error.as_deref(),
            Some("token id 300000 out of vocabulary")
        );
        let info =
            decode_chunk(br#"{"object":"error","message":"boom","type":"X"}"#, None).unwrap();
        assert_eq!(info.error.as_deref(), Some("boom"));
        let info = decode_chunk(br#"{"detail":"Internal error"}"#, None).unwrap();
        assert_eq!(info.error.as_deref(), Some("Internal error"));
        assert!(decode_chunk(b"{\"choices\":[", None).is_err());
        assert!(decode_chunk(b"[1,2]", None).is_err());
        assert!(decode_chunk(b"{} x", None).is_err());
    }

    #[test]
    fn recorder_counts_chunks_and_tokens() {
        let st = Instant::now();
        let at = |ms| st + Duration::from_millis(ms);
        let mut r = StreamRecorder::new(st, 4, false);
        r.on_payload(
            br#"{"choices":[{"text":"a"}],"usage":{"completion_tokens":1}}"#,
            at(100),
        )
        .unwrap();
        r.on_payload(
            br#"{"choices":[{"text":"bc"}],"usage":{"completion_tokens":3}}"#,
            at(130),
        )
        .unwrap();
        r.on_payload(
            br#"{"choices":[{"text":""}],"usage":{"completion_tokens":4}}"#,
            at(150),
        )
        .unwrap();
        r.on_payload(
            br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4}}"#,
            at(160),
        )
        .unwrap();
        assert!((r.ttft() - 0.1).abs() < 1e-9);
        assert!((r.latency() - 0.15).abs() < 1e-9);
        assert_eq!(r.chunks.tokens().collect::<Vec<_>>(), vec![1, 2, 1]);
        assert_eq!(r.chunks.gaps().len(), 2);
        assert_eq!((r.completion_tokens, r.prompt_tokens), (Some(4), Some(10)));
        assert!(r.continuous_usage);
        assert_eq!(r.same_read, 0);
        r.on_payload(br#"{"choices":[{"text":"d"}]}"#, at(150))
            .unwrap();
        assert_eq!(r.same_read, 1, "same timestamp: same read");
    }
}
