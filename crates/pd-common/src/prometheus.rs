//! Prometheus text exposition format (version 0.0.4, and the OpenMetrics text that
//! `prometheus_client` serves when asked): the one parser of the pd-lab tools. run-bm reads
//! the server's `/metrics` with it; the simulator's tests read their own page back with it.
//!
//! A line is `name{label="value",…} value [timestamp]`, or a `#` comment (`# HELP`,
//! `# TYPE`, `# EOF`). Label values unescape `\\`, `\"` and `\n`; values are floats,
//! `NaN`, `+Inf`, `-Inf`. A line that does not parse is counted in [`Page::bad_lines`]
//! and skipped: a page is never rejected as a whole, and nothing here panics.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One sample of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written (`vllm:num_requests_running`,
    /// `vllm:time_to_first_token_seconds_count`).
    pub name: String,
    /// Labels in page order.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The label set as Prometheus text, in page order: `engine="0",model_name="m"`
    /// (`\`, `"` and newlines escaped); empty without labels.
    pub fn labels_text(&self) -> String {
        labels_text(&self.labels)
    }
}

/// `k="v",…` with Prometheus escaping.
pub fn labels_text(labels: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

/// The declared type of a metric family (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    fn parse(s: &str) -> MetricType {
        match s {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" | "gaugehistogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }
}

/// A parsed page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Samples in page order.
    pub samples: Vec<Sample>,
    /// `# TYPE` declarations by family name.
    pub types: BTreeMap<String, MetricType>,
    /// Non-comment lines that are not samples.
    pub bad_lines: usize,
}

impl Page {
    /// The first sample named `name` (any labels).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    }

    /// The first sample named `name` whose labels include every `(key, value)` of `with`.
    pub fn value_with(&self, name: &str, with: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }
}

/// Parse a page (never fails; see the module doc).
pub fn parse(text: &str) -> Page {
    let mut page = Page::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.split_whitespace();
            if parts.next() == Some("TYPE") {
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    page.types.insert(name.to_string(), MetricType::parse(kind));
                }
            }
            continue;
        }
        match parse_sample(line) {
            Some(s) => page.samples.push(s),
            None => page.bad_lines += 1,
        }
    }
    page
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A sample value: a float, `NaN`, `+Inf`, `-Inf` (Go's and Python's spellings).
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let mut chars = line.char_indices().peekable();
    let (_, c0) = chars.next()?;
    if !is_name_start(c0) {
        return None;
    }
    let mut end = c0.len_utf8();
    while let Some(&(i, c)) = chars.peek() {
        if !is_name_char(c) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    let name = &line[..end];
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    // Value, then an optional timestamp; at least one blank before the value.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<f64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Labels after `{` up to the closing `}`; returns them and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(tail) = s.strip_prefix('}') {
            return Some((labels, tail));
        }
        let key_end = s
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(s.len(), |(i, _)| i);
        if key_end == 0 {
            return None;
        }
        let key = &s[..key_end];
        s = s[key_end..].trim_start().strip_prefix('=')?;
        s = s.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut it = s.char_indices();
        let close = loop {
            let (i, c) = it.next()?;
            match c {
                '"' => break i,
                '\\' => match it.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, '\\') => value.push('\\'),
                    (_, '"') => value.push('"'),
                    (_, other) => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                c => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = s[close + 1..].trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vllm_and_ray_pages() {
        let page = parse(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{engine=\"0\",model_name=\"gptoss\"} 3.0\n\
             # TYPE vllm:prompt_tokens counter\n\
             vllm:prompt_tokens_total{engine=\"0\",model_name=\"gptoss\"} 1.2e+06\n\
             vllm:nixl_xfer_time_seconds_bucket{engine=\"0\",le=\"+Inf\"} 7\n\
             ray_vllm_num_requests_waiting{Component=\"core_worker\",ReplicaId=\"a b\",} 2 1700000000000\n\
             weird{path=\"C:\\\\x\",msg=\"say \\\"hi\\\"\\n\"} NaN\n\
             up +Inf\n\
             # EOF\n",
        );
        assert_eq!(page.bad_lines, 0);
        assert_eq!(page.samples.len(), 6);
        assert_eq!(page.value("vllm:num_requests_running"), Some(3.0));
        assert_eq!(page.value("vllm:prompt_tokens_total"), Some(1.2e6));
        assert_eq!(
            page.types.get("vllm:prompt_tokens"),
            Some(&MetricType::Counter)
        );
        assert_eq!(
            page.value_with("vllm:nixl_xfer_time_seconds_bucket", &[("le", "+Inf")]),
            Some(7.0)
        );
        let ray = &page.samples[3];
        assert_eq!(ray.label("ReplicaId"), Some("a b"));
        assert_eq!(ray.value, 2.0);
        let w = &page.samples[4];
        assert_eq!(w.label("path"), Some("C:\\x"));
        assert_eq!(w.label("msg"), Some("say \"hi\"\n"));
        assert!(w.value.is_nan());
        assert_eq!(
            w.labels_text(),
            "path=\"C:\\\\x\",msg=\"say \\\"hi\\\"\\n\""
        );
        // The text form parses back to the same labels.
        let again = parse(&format!("weird{{{}}} 1", w.labels_text()));
        assert_eq!(again.samples[0].labels, w.labels);
        assert_eq!(page.value("up"), Some(f64::INFINITY));
    }

    #[test]
    fn bad_lines_are_counted_not_fatal() {
        let page = parse(
            "ok 1\n\
             9bad 1\n\
             novalue\n\
             glued{a=\"1\"}2\n\
             unterminated{a=\"1} 2\n\
             nokey{=\"1\"} 2\n\
             noquote{a=1} 2\n\
             notanumber abc\n\
             toomany 1 2 3\n\
             badts 1 x\n\
             {a=\"1\"} 2\n\
             ünicode 1\n\
             ok2{a=\"é\"} -Inf\n",
        );
        assert_eq!(page.samples.len(), 2, "{:?}", page.samples);
        assert_eq!(page.bad_lines, 11);
        assert_eq!(page.value("ok2"), Some(f64::NEG_INFINITY));
        assert_eq!(parse("").samples.len(), 0);
        // Arbitrary bytes never panic.
        let junk: String = (0u32..2000)
            .filter_map(|i| char::from_u32((i * 7919) % 0x2FF))
            .collect();
        let _ = parse(&junk);
    }
}
