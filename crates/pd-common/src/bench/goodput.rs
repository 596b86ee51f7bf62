//! Service-level objectives for `request_goodput`.

use super::outcome::RequestOutcome;

/// Service-level objectives for goodput, in milliseconds (spec B.7).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Goodput {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2el_ms: Option<f64>,
}

impl Goodput {
    /// Parse one `KEY:VALUE` token into `self` (last key wins).
    pub fn add_token(&mut self, token: &str) -> Result<(), String> {
        let parts: Vec<&str> = token.split(':').collect();
        if parts.len() != 2 {
            return Err(format!(
                "'{token}': expected KEY:VALUE, e.g. ttft:2000 (milliseconds)"
            ));
        }
        let v: f64 = parts[1]
            .trim()
            .parse()
            .map_err(|_| format!("'{token}': '{}' is not a number", parts[1]))?;
        if v.is_nan() || v < 0.0 || v.is_infinite() {
            return Err(format!(
                "'{token}': the SLO must be a finite number ≥ 0 (ms)"
            ));
        }
        match parts[0].trim() {
            "ttft" => self.ttft_ms = Some(v),
            "tpot" => self.tpot_ms = Some(v),
            "e2el" => self.e2el_ms = Some(v),
            k => return Err(format!("'{k}': goodput keys are ttft, tpot and e2el")),
        }
        Ok(())
    }

    /// Whether a successful request meets every SLO (inclusive).
    pub fn is_good(&self, r: &RequestOutcome) -> bool {
        let ok = |slo: Option<f64>, v: f64| slo.is_none_or(|ms| v <= ms / 1000.0);
        ok(self.ttft_ms, r.ttft)
            && ok(self.tpot_ms, r.tpot().unwrap_or(0.0))
            && ok(self.e2el_ms, r.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ChunkTimeline;

    fn req(ttft: f64) -> RequestOutcome {
        RequestOutcome {
            ttft,
            output_tokens: 1,
            latency: ttft,
            chunks: ChunkTimeline::single_tokens(vec![]),
            ..Default::default()
        }
    }

    #[test]
    fn goodput_parse_and_rule() {
        let mut g = Goodput::default();
        g.add_token("ttft:100").unwrap();
        g.add_token("ttft:200").unwrap();
        assert_eq!(g.ttft_ms, Some(200.0));
        assert!(g.add_token("foo:1").is_err());
        assert!(g.add_token("ttft").is_err());
        assert!(g.add_token("ttft:-1").is_err());
        assert!(g.is_good(&req(0.2)));
        assert!(!g.is_good(&req(0.2001)));
    }
}
