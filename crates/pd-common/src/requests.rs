//! Per-request records of a sweep point, written as CSV next to the point's JSON.
//!
//! Times are seconds relative to the start of the point's dispatch loop (monotonic
//! clock), so `scheduled_s` and `sent_s` of the first request are near 0.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::csvfile;
use crate::error::{Error, Result};

/// One request of a sweep point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RequestRecord {
    /// Position in dispatch order.
    pub index: u64,
    /// When the schedule said the request should be sent.
    pub scheduled_s: f64,
    /// When the HTTP request was actually sent (after any client-side queueing).
    pub sent_s: f64,
    /// `sent_s - scheduled_s`: client queue wait plus scheduling lateness.
    pub queue_wait_s: f64,
    /// Time to the first chunk with choices (0 if none arrived).
    pub ttft_s: f64,
    /// Time to the last chunk with choices (end-to-end latency).
    pub e2el_s: f64,
    /// Prompt tokens (server usage when reported, else the client's count).
    pub prompt_tokens: u64,
    /// Output tokens (server usage).
    pub output_tokens: u64,
    /// SSE chunk events with choices received.
    pub chunks: u64,
    pub success: bool,
    /// HTTP status (0 when no response).
    pub http_status: u16,
    /// Error text ("" on success).
    pub error: String,
}

/// Write records as CSV (atomically).
pub fn write_requests_csv(path: &Path, records: &[RequestRecord]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in records {
        w.serialize(r).map_err(|source| Error::Csv {
            path: path.to_path_buf(),
            source,
        })?;
    }
    if records.is_empty() {
        // Keep a header so the file is self-describing even when empty.
        w.write_record([
            "index",
            "scheduled_s",
            "sent_s",
            "queue_wait_s",
            "ttft_s",
            "e2el_s",
            "prompt_tokens",
            "output_tokens",
            "chunks",
            "success",
            "http_status",
            "error",
        ])
        .map_err(|source| Error::Csv {
            path: path.to_path_buf(),
            source,
        })?;
    }
    csvfile::write_atomic(path, w)
}

/// Read records from a CSV file.
pub fn read_requests_csv(path: &Path) -> Result<Vec<RequestRecord>> {
    csvfile::read_rows(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conc4.requests.csv");
        let recs = vec![
            RequestRecord {
                index: 0,
                sent_s: 0.001,
                ttft_s: 0.2,
                e2el_s: 1.5,
                prompt_tokens: 5000,
                output_tokens: 250,
                chunks: 250,
                success: true,
                http_status: 200,
                ..Default::default()
            },
            RequestRecord {
                index: 1,
                error: "Bad Request: prompt, too long".into(),
                http_status: 400,
                ..Default::default()
            },
        ];
        write_requests_csv(&p, &recs).unwrap();
        assert_eq!(read_requests_csv(&p).unwrap(), recs);
        write_requests_csv(&p, &[]).unwrap();
        assert!(read_requests_csv(&p).unwrap().is_empty());
    }
}
