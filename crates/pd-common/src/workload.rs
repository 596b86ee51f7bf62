//! The benchmark workload: lengths, mode, sweep kind and sweep values.
//!
//! Defaults are the seed's `run_bm.sh`: ITL 8000, OTL 1000, concurrency `all` =
//! 4,8,16,32,48,64 with 5 × C prompts per point, request rate `all` = 1..10 with
//! 500 prompts per point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default input token length of `run-bm`.
pub const DEFAULT_ITL: u32 = 8000;
/// Default output token length of `run-bm`.
pub const DEFAULT_OTL: u32 = 1000;
/// `-c all`.
pub const ALL_CONCURRENCIES: [u32; 6] = [4, 8, 16, 32, 48, 64];
/// `-r all`.
pub const ALL_REQUEST_RATES: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
/// Prompts per concurrency point = this × concurrency.
pub const PROMPTS_PER_CONCURRENCY: u64 = 5;
/// Prompts per request-rate point.
pub const PROMPTS_PER_RATE_POINT: u64 = 500;

/// What the benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    /// ITL:OTL with a unique random prompt per request.
    #[default]
    Mixed,
    /// ITL:1, measures prefill.
    PrefillOnly,
    /// The ITL tokens are one prefix shared by every request (the server's prefix cache
    /// absorbs prefill), then OTL output tokens.
    DecodeOnly,
}

impl BenchMode {
    pub const ALL: [BenchMode; 3] = [
        BenchMode::Mixed,
        BenchMode::PrefillOnly,
        BenchMode::DecodeOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BenchMode::Mixed => "mixed",
            BenchMode::PrefillOnly => "prefill-only",
            BenchMode::DecodeOnly => "decode-only",
        }
    }
}

impl fmt::Display for BenchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BenchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BenchMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "benchmark mode",
                    format!("'{s}' (expected mixed, prefill-only or decode-only)"),
                )
            })
    }
}

/// Input/output lengths and mode of one benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Input token length asked for (ITL).
    pub itl: u32,
    /// Output token length asked for (OTL).
    pub otl: u32,
    pub mode: BenchMode,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            itl: DEFAULT_ITL,
            otl: DEFAULT_OTL,
            mode: BenchMode::Mixed,
        }
    }
}

impl Workload {
    /// A validated workload: both lengths must be at least 1.
    pub fn new(itl: u32, otl: u32, mode: BenchMode) -> Result<Self> {
        if itl == 0 {
            return Err(Error::invalid("input length", "--itl must be at least 1"));
        }
        if otl == 0 {
            return Err(Error::invalid("output length", "--otl must be at least 1"));
        }
        Ok(Workload { itl, otl, mode })
    }

    /// Prompt tokens every request carries (the same in all modes).
    pub fn input_len(&self) -> u32 {
        self.itl
    }

    /// Output tokens asked for (`max_tokens`): 1 in prefill-only mode.
    pub fn output_len(&self) -> u32 {
        match self.mode {
            BenchMode::PrefillOnly => 1,
            _ => self.otl,
        }
    }

    /// Tokens shared by every request's prompt (a common prefix).
    pub fn shared_prefix_len(&self) -> u32 {
        match self.mode {
            BenchMode::DecodeOnly => self.itl,
            _ => 0,
        }
    }

    /// Tokens unique to each request's prompt.
    pub fn unique_suffix_len(&self) -> u32 {
        self.itl - self.shared_prefix_len()
    }
}

/// Kind of sweep `run-bm` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SweepKind {
    /// Closed loop: at most C requests in flight, 5 × C prompts per point.
    #[default]
    Concurrency,
    /// Open loop: Poisson/gamma arrivals at R requests/s, 500 prompts per point.
    RequestRate,
}

impl SweepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepKind::Concurrency => "concurrency",
            SweepKind::RequestRate => "request-rate",
        }
    }
}

impl fmt::Display for SweepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SweepKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "concurrency" => Ok(SweepKind::Concurrency),
            "request-rate" => Ok(SweepKind::RequestRate),
            _ => Err(Error::invalid(
                "sweep type",
                format!("'{s}' (expected concurrency or request-rate)"),
            )),
        }
    }
}

/// Parse a concurrency list: `"4,8,16"` or `all`. Every value must be an integer ≥ 1.
pub fn parse_concurrency_list(s: &str) -> Result<Vec<u32>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(ALL_CONCURRENCIES.to_vec());
    }
    split_list(s, "concurrency list")?
        .into_iter()
        .map(|v| match v.parse::<u32>() {
            Ok(0) => Err(Error::invalid(
                "concurrency list",
                format!("'{v}': concurrency must be at least 1"),
            )),
            Ok(n) => Ok(n),
            Err(_) => Err(Error::invalid(
                "concurrency list",
                format!("'{v}' is not a whole number (expected e.g. \"4,8,16\" or \"all\")"),
            )),
        })
        .collect()
}

/// Parse a request-rate list: `"1,2,4"`, `"0.5,1.5"`, `inf` or `all`. Rates must be > 0.
pub fn parse_rate_list(s: &str) -> Result<Vec<f64>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(ALL_REQUEST_RATES.to_vec());
    }
    split_list(s, "request-rate list")?
        .into_iter()
        .map(|v| match v.parse::<f64>() {
            Ok(r) if r > 0.0 && !r.is_nan() => Ok(r),
            Ok(_) => Err(Error::invalid(
                "request-rate list",
                format!("'{v}': a request rate must be greater than 0"),
            )),
            Err(_) => Err(Error::invalid(
                "request-rate list",
                format!("'{v}' is not a number (expected e.g. \"1,2,4\", \"inf\" or \"all\")"),
            )),
        })
        .collect()
}

fn split_list<'a>(s: &'a str, what: &'static str) -> Result<Vec<&'a str>> {
    if s.is_empty() {
        return Err(Error::invalid(what, "the list is empty"));
    }
    let items: Vec<&str> = s.split(',').map(str::trim).collect();
    if let Some(pos) = items.iter().position(|v| v.is_empty()) {
        return Err(Error::invalid(
            what,
            format!("empty value at position {} in '{s}'", pos + 1),
        ));
    }
    Ok(items)
}

/// Number of prompts of one concurrency point (5 × C).
pub fn prompts_for_concurrency(c: u32) -> u64 {
    PROMPTS_PER_CONCURRENCY * u64::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_lengths_per_mode() {
        let w = Workload::new(5000, 250, BenchMode::Mixed).unwrap();
        assert_eq!(
            (
                w.input_len(),
                w.output_len(),
                w.shared_prefix_len(),
                w.unique_suffix_len()
            ),
            (5000, 250, 0, 5000)
        );
        let w = Workload::new(5000, 250, BenchMode::PrefillOnly).unwrap();
        assert_eq!((w.output_len(), w.shared_prefix_len()), (1, 0));
        let w = Workload::new(5000, 250, BenchMode::DecodeOnly).unwrap();
        assert_eq!(
            (w.output_len(), w.shared_prefix_len(), w.unique_suffix_len()),
            (250, 5000, 0)
        );
        assert!(Workload::new(0, 1, BenchMode::Mixed).is_err());
        assert!(Workload::new(1, 0, BenchMode::Mixed).is_err());
    }

    #[test]
    fn concurrency_lists() {
        assert_eq!(
            parse_concurrency_list("all").unwrap(),
            vec![4, 8, 16, 32, 48, 64]
        );
        assert_eq!(parse_concurrency_list(" 4, 8,16 ").unwrap(), vec![4, 8, 16]);
        for bad in ["", "0", "abc", "4,,8", "-1", "1.5"] {
            let e = parse_concurrency_list(bad).unwrap_err().to_string();
            assert!(e.contains("concurrency list"), "{bad}: {e}");
        }
    }

    #[test]
    fn rate_lists() {
        assert_eq!(parse_rate_list("all").unwrap().len(), 10);
        assert_eq!(parse_rate_list("0.5,2").unwrap(), vec![0.5, 2.0]);
        assert!(parse_rate_list("inf").unwrap()[0].is_infinite());
        for bad in ["0", "-2", "x", "nan", ","] {
            assert!(parse_rate_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mode_and_kind_parse() {
        for m in BenchMode::ALL {
            assert_eq!(m.as_str().parse::<BenchMode>().unwrap(), m);
        }
        assert!("decode".parse::<BenchMode>().is_err());
        assert_eq!(
            "request-rate".parse::<SweepKind>().unwrap(),
            SweepKind::RequestRate
        );
        assert_eq!(prompts_for_concurrency(16), 80);
    }
}
