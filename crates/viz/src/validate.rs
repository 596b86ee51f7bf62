//! Checks of a point's numbers before anything is plotted or compared.
//!
//! A latency or throughput that is negative, NaN or infinite is a broken measurement, not
//! a fast configuration: a TPOT of −5 ms must never win an SLA pick. Such a point is
//! skipped as a whole, with a warning naming the file, the key and the value. Python's
//! `json` writes `NaN` / `Infinity` literals that strict JSON forbids; they are read as
//! such (and then rejected if they sit in a metric viz uses).

use pd_common::BenchResult;
use serde_json::Value;

/// Keys whose value must be a finite number ≥ 0 when present (besides every `*_ms` key).
const NON_NEGATIVE: [&str; 5] = [
    "request_throughput",
    "output_throughput",
    "total_token_throughput",
    "request_goodput",
    "max_output_tokens_per_s",
];

/// Replace the non-standard literals `NaN`, `Infinity` and `-Infinity` outside strings
/// by `null`; returns the text and the keys that held them (the last string before each).
pub fn replace_non_finite(text: &str) -> (String, Vec<String>) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut keys = Vec::new();
    let mut last_string = String::new();
    let mut i = 0;
    let mut plain_start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Copy the string literal and remember it.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                last_string = text[start + 1..i.saturating_sub(1).max(start + 1)].to_string();
            }
            b'N' | b'I' | b'-' => {
                let rest = &text[i..];
                let lit = ["NaN", "Infinity", "-Infinity"]
                    .into_iter()
                    .find(|l| rest.starts_with(l));
                if let Some(lit) = lit {
                    out.push_str(&text[plain_start..i]);
                    out.push_str("null");
                    keys.push(last_string.clone());
                    i += lit.len();
                    plain_start = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[plain_start..]);
    keys.dedup();
    (out, keys)
}

fn is_checked_key(key: &str) -> bool {
    key == "duration" || key.ends_with("_ms") || NON_NEGATIVE.contains(&key)
}

/// Why a point's numbers cannot be used (`None` when they can). `non_finite_keys` are
/// the keys that held NaN / Infinity in the file.
pub fn problem(r: &BenchResult, non_finite_keys: &[String]) -> Option<String> {
    if let Some(k) = non_finite_keys.iter().find(|k| is_checked_key(k)) {
        return Some(format!("{k} is NaN or infinite"));
    }
    if !(r.duration.is_finite() && r.duration > 0.0) {
        return Some(format!("duration is {} (must be > 0 s)", r.duration));
    }
    let fields = [
        ("request_throughput", r.request_throughput),
        ("output_throughput", r.output_throughput),
        ("total_token_throughput", r.total_token_throughput),
    ];
    let stats = r
        .rest
        .iter()
        .filter(|(k, _)| is_checked_key(k))
        .filter_map(|(k, v)| v.as_f64().map(|x| (k.as_str(), x)));
    let goodput = r.request_goodput.map(|g| ("request_goodput", g));
    for (k, v) in fields.into_iter().chain(stats).chain(goodput) {
        if !v.is_finite() {
            return Some(format!("{k} is {v}"));
        }
        if v < 0.0 {
            return Some(format!("{k} is negative ({v})"));
        }
    }
    None
}

/// Parse a result file's text leniently (NaN / Infinity literals become `null`).
pub fn parse(text: &str) -> Result<(BenchResult, Vec<String>), serde_json::Error> {
    match serde_json::from_str::<BenchResult>(text) {
        Ok(r) => Ok((r, Vec::new())),
        Err(strict) => {
            let (clean, keys) = replace_non_finite(text);
            if keys.is_empty() {
                return Err(strict);
            }
            let v: Value = serde_json::from_str(&clean)?;
            Ok((serde_json::from_value(v)?, keys))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "request_rate": "inf", "max_concurrency": 4, "duration": 10.0, "completed": 5,
            "total_input_tokens": 10, "total_output_tokens": 10, "request_throughput": 0.5,
            "output_throughput": 1.0, "total_token_throughput": 2.0,
            "median_tpot_ms": 10.0, "median_ttft_ms": 100.0, "request_goodput": null
        })
    }

    fn check(v: Value) -> Option<String> {
        let r: BenchResult = serde_json::from_value(v).unwrap();
        problem(&r, &[])
    }

    #[test]
    fn negative_and_non_finite_metrics_are_rejected() {
        assert_eq!(check(base()), None);
        for (key, value) in [
            ("median_tpot_ms", json!(-5.0)),
            ("median_ttft_ms", json!(-0.001)),
            ("p99_itl_ms", json!(-1)),
            ("output_throughput", json!(-3.0)),
            ("request_throughput", json!(-0.1)),
            ("duration", json!(0.0)),
            ("duration", json!(-2.0)),
            ("request_goodput", json!(-1.0)),
        ] {
            let mut v = base();
            v[key] = value;
            let why = check(v).unwrap_or_else(|| panic!("{key} accepted"));
            assert!(why.contains(key), "{why}");
        }
        // Zero is a legitimate TPOT (one output token) and throughput.
        let mut v = base();
        v["median_tpot_ms"] = json!(0.0);
        assert_eq!(check(v), None);
    }

    #[test]
    fn python_nan_literals_are_read_and_named() {
        let text = r#"{"request_rate": "inf", "max_concurrency": 4, "duration": 10.0,
            "completed": 5, "total_input_tokens": 10, "total_output_tokens": 10,
            "request_throughput": 0.5, "output_throughput": 1.0, "total_token_throughput": 2.0,
            "label": "NaN is text here", "median_tpot_ms": NaN, "std_itl_ms": -Infinity}"#;
        let (r, keys) = parse(text).unwrap();
        assert_eq!(
            keys,
            vec!["median_tpot_ms".to_string(), "std_itl_ms".to_string()]
        );
        assert_eq!(r.label.as_deref(), Some("NaN is text here"));
        let why = problem(&r, &keys).unwrap();
        assert!(
            why.contains("median_tpot_ms") && why.contains("NaN"),
            "{why}"
        );
        // A NaN in a required field still fails to parse.
        assert!(parse(r#"{"request_rate": 1, "duration": NaN}"#).is_err());
        // Strict JSON errors are kept as they are.
        assert!(parse("{\"duration\": ").is_err());
    }
}
