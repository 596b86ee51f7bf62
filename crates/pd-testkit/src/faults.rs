//! Misbehaving-server replies for fault tests (used with [`crate::fake_openai`]): each
//! function returns the [`Reply`] of one way a server or a network can fail.

use std::time::Duration;

use bytes::Bytes;

use crate::fake_openai::{GenSpec, Reply};

/// One SSE completion chunk carrying `text`, with running usage `tokens` (prompt 8).
pub fn chunk(text: &str, tokens: u64) -> Bytes {
    Bytes::from(format!(
        "data: {{\"choices\":[{{\"index\":0,\"text\":\"{text}\"}}],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{tokens}}}}}\n\n"
    ))
}

/// The final usage message and `[DONE]`.
pub fn usage_and_done(tokens: u64) -> Bytes {
    Bytes::from(format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{tokens}}}}}\n\ndata: [DONE]\n\n"
    ))
}

fn frames(parts: Vec<Bytes>, then_break: bool) -> Reply {
    Reply::Frames {
        frames: parts
            .into_iter()
            .map(|b| (Duration::from_millis(2), b))
            .collect(),
        then_break,
    }
}

/// HTTP `status` with a vLLM-style error body.
pub fn http_error(status: u16, message: &str) -> Reply {
    Reply::Status {
        status,
        body: serde_json::json!({"error": {"message": message, "type": "InternalServerError", "code": status}})
            .to_string(),
    }
}

/// `n` chunks, then the connection breaks (a server crash mid-stream).
pub fn cut_mid_stream(n: u64) -> Reply {
    frames((1..=n).map(|i| chunk("x", i)).collect(), true)
}

/// A complete-looking stream of `n` tokens (usage included) whose connection then closes
/// cleanly without `data: [DONE]`.
pub fn clean_close_without_done(n: u64) -> Reply {
    let mut parts: Vec<Bytes> = (1..=n).map(|i| chunk("x", i)).collect();
    parts.push(Bytes::from(format!(
        "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{n}}}}}\n\n"
    )));
    frames(parts, false)
}

/// A well-formed stream (usage and `[DONE]`) that carries only `n` tokens, whatever
/// `max_tokens` asked for.
pub fn short_stream(n: u64) -> Reply {
    Reply::Generate(GenSpec {
        ttft: Duration::from_millis(2),
        interval: Duration::from_millis(1),
        tokens: Some(n),
        tokens_per_chunk: 1,
    })
}

/// A chunk, then an SSE event that is not JSON.
pub fn malformed() -> Reply {
    frames(
        vec![
            chunk("x", 1),
            Bytes::from_static(b"data: {\"choices\": [oops\n\n"),
        ],
        false,
    )
}

/// One chunk, then nothing for `silence` (the connection stays open), then the rest.
pub fn stall_after_first_chunk(silence: Duration) -> Reply {
    Reply::Frames {
        frames: vec![
            (Duration::from_millis(2), chunk("x", 1)),
            (silence, usage_and_done(1)),
        ],
        then_break: false,
    }
}

/// Headers at once, then no byte for `silence` before the first chunk (see
/// [`Reply::Hang`] for a server that never even sends headers).
pub fn stall_before_first_chunk(silence: Duration) -> Reply {
    Reply::Frames {
        frames: vec![(silence, chunk("x", 1))],
        then_break: false,
    }
}

/// An SSE line that never ends (`bytes` long).
pub fn oversized_line(bytes: u64) -> Reply {
    Reply::Flood { bytes }
}
