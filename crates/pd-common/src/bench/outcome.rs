//! What happened to one request of a benchmark point.

use super::timeline::ChunkTimeline;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The server answered with an HTTP error status.
    Http,
    /// No response: connection refused, reset or broken, or a TLS/protocol error.
    Transport,
    /// The server sent an error event inside a 200 stream.
    ErrorEvent,
    /// The stream carried something that is not a valid event.
    Malformed,
    /// The stream ended before it was complete (no `[DONE]`, or fewer tokens than asked
    /// for when the end of sequence is ignored).
    Incomplete,
    /// The request took longer than the request timeout.
    Timeout,
    /// No byte arrived for longer than the stall timeout.
    Stalled,
    /// The run was interrupted before the response finished.
    Aborted,
}

impl FailureKind {
    /// Short name (CSV, summaries).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Http => "http",
            FailureKind::Transport => "transport",
            FailureKind::ErrorEvent => "error-event",
            FailureKind::Malformed => "malformed",
            FailureKind::Incomplete => "incomplete",
            FailureKind::Timeout => "timeout",
            FailureKind::Stalled => "stalled",
            FailureKind::Aborted => "aborted",
        }
    }
}

/// A failed request: what kind of failure and the text the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Everything recorded about one request. Times are seconds from the start of the point's
/// dispatch loop (a monotonic clock, or virtual time in the simulator).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestOutcome {
    /// Position in dispatch (dataset) order.
    pub index: u64,
    /// When the schedule said to send it.
    pub scheduled_s: f64,
    /// When the dispatcher created it (vLLM's `request_arrival_time`).
    pub arrival_s: f64,
    /// Right before the request was issued (vLLM's `start_time`).
    pub sent_s: f64,
    /// `None` on success.
    pub failure: Option<Failure>,
    /// HTTP status (0 when there was no response).
    pub http_status: u16,
    /// Prompt tokens: the server's usage count when reported, else the client's count.
    pub prompt_len: u64,
    /// The client's own prompt length.
    pub client_prompt_len: u64,
    /// `usage.completion_tokens` of the final usage message (0 if none).
    pub output_tokens: u64,
    /// First chunk event − send time, seconds (0 without chunks).
    pub ttft: f64,
    /// The chunk events.
    pub chunks: ChunkTimeline,
    /// Whether the server sent running usage in the chunks (`continuous_usage_stats`).
    pub continuous_usage: bool,
    /// Last chunk event − send time, seconds (0 for failed requests, as in vLLM).
    pub latency: f64,
    /// Streamed text ("" unless kept).
    pub text: String,
}

impl RequestOutcome {
    /// Whether the request succeeded.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure text, "" on success.
    pub fn error_text(&self) -> &str {
        self.failure.as_ref().map_or("", |f| f.message.as_str())
    }

    /// Output length used by the metrics: server usage if non-zero, else the tokens
    /// counted from per-chunk usage, else the number of chunk events. 0 for failures.
    pub fn output_len(&self) -> u64 {
        if !self.is_success() {
            return 0;
        }
        if self.output_tokens > 0 {
            return self.output_tokens;
        }
        self.chunks
            .total_tokens()
            .max(self.chunks.len() as u64)
            .max(1)
    }

    /// TPOT in seconds: (E2EL − TTFT) / (output_len − 1); None when output_len ≤ 1.
    pub fn tpot(&self) -> Option<f64> {
        let n = self.output_len();
        (n > 1).then(|| (self.latency - self.ttft) / (n - 1) as f64)
    }

    /// Time spent waiting in the client for a concurrency slot, seconds.
    pub fn client_queue_time(&self) -> f64 {
        (self.sent_s - self.arrival_s).max(0.0)
    }

    /// Chunk event times (relative to the dispatch start).
    pub fn chunk_times(&self) -> impl Iterator<Item = f64> + '_ {
        self.chunks.times(self.sent_s + self.ttft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_len_falls_back_to_chunks() {
        let mut o = RequestOutcome {
            chunks: ChunkTimeline::from_parts(vec![0.1, 0.1], vec![1, 2, 0]).unwrap(),
            ttft: 0.5,
            latency: 0.7,
            ..Default::default()
        };
        assert_eq!(o.output_len(), 3);
        o.output_tokens = 5;
        assert_eq!(o.output_len(), 5);
        assert!((o.tpot().unwrap() - 0.05).abs() < 1e-12);
        o.failure = Some(Failure::new(FailureKind::Http, "HTTP 500"));
        assert_eq!(
            (o.output_len(), o.tpot(), o.error_text()),
            (0, None, "HTTP 500")
        );
    }
}
