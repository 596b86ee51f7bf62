//! The cluster's Ray version (`GET /api/version` → `ray_version`) and what it implies for
//! the Serve config we render.

use std::fmt;

/// First Ray minor release (2.x) whose PD builder rejects `proxy_deployment_config`.
///
/// History of `build_pd_openai_app` (Ray Serve LLM), from Ray's sources and PRs:
/// * ray#53821 (June 2025) added `proxy_deployment_config`: the options of the
///   `PDProxyServer` deployment that sat between the ingress and the P/D servers. The
///   seed's runs (a Ray 2.51 nightly) passed 16 proxy replicas with
///   `max_ongoing_requests: 1e5`.
/// * ray#62076 (March 2026) replaced the proxy by a decode server that calls prefill
///   itself; `proxy_deployment_config` stayed accepted but ignored (DeprecationWarning),
///   with removal announced for Ray 2.58.
/// * Ray 2.60 rejects it ("Extra inputs are not permitted"; measured).
///
/// So the proxy config is rendered for every release that accepts it (< 2.58: used or
/// harmlessly ignored) and left out from 2.58 on.
pub const FIRST_PROXYLESS_MINOR: u32 = 58;

/// Version assumed when none is known (`--dry-run --nodes`, no cluster).
pub const ASSUMED_VERSION: &str = "2.60.0";

/// A parsed Ray version such as `2.60.0` or `2.51.0.dev0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RayVersion {
    pub raw: String,
    /// (major, minor, patch); `None` when the string does not parse.
    pub parsed: Option<(u32, u32, u32)>,
}

impl RayVersion {
    pub fn parse(raw: &str) -> RayVersion {
        let mut it = raw.trim().split(['.', '-', '+']);
        let mut num = || -> Option<u32> {
            let part = it.next()?;
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        };
        let parsed = match (num(), num()) {
            (Some(a), Some(b)) => Some((a, b, num().unwrap_or(0))),
            _ => None,
        };
        RayVersion {
            raw: raw.trim().to_string(),
            parsed,
        }
    }

    /// Does this Ray's PD builder accept a `proxy_deployment_config`?
    /// Unparseable versions are treated as recent (no proxy).
    pub fn pd_has_proxy(&self) -> bool {
        match self.parsed {
            Some((major, minor, _)) => major < 2 || (major == 2 && minor < FIRST_PROXYLESS_MINOR),
            None => false,
        }
    }
}

impl fmt::Display for RayVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_layout_by_version() {
        assert!(!RayVersion::parse("2.60.0").pd_has_proxy());
        assert!(!RayVersion::parse("2.58.0").pd_has_proxy());
        assert!(RayVersion::parse("2.57.1").pd_has_proxy());
        assert!(RayVersion::parse("2.54.1").pd_has_proxy());
        assert!(RayVersion::parse("2.51.0.dev0").pd_has_proxy());
        assert!(!RayVersion::parse("3.0.0rc1").pd_has_proxy());
        assert!(!RayVersion::parse("nightly").pd_has_proxy());
        assert_eq!(RayVersion::parse("2.60.0").parsed, Some((2, 60, 0)));
    }
}
