//! Parser for the configuration labels found in result directory names.
//!
//! Recognised configuration tokens (one per name, `_`-separated):
//! * `4xtp2`: 4 collocated replicas at TP2;
//! * `p1xtp4-d1xtp4`: 1 prefill replica at TP4, 1 decode replica at TP4;
//! * `1xtp2-3xtp2`: the same, prefill first;
//! * `4ptp1-2dtp2`: 4 prefill replicas at TP1, 2 decode replicas at TP2;
//! * `tpep` in place of `tp` (TP with expert parallelism): `1xtpep4-1xtpep4`.
//!
//! Tags: `H200`/`H100` (GPU), `pack`/`spread` (PD placement), `baseline`/`collocated`,
//! and the network tags `ucx`, `libfabric`, `tcp`, `srd`, `efa`, `ib`.
//! A name without exactly one configuration token is reported, never guessed.

use serde::Serialize;

use crate::deployment::{DeployMode, GpuKind, Replicas};
use crate::error::{Error, Result};

/// What a legacy name says about its deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedLabel {
    /// Canonical label (`4xtp2`, `p1xtp4-d1xtp4`).
    pub label: String,
    /// Collocated, or PD with the placement when the name says it (`pd-pack` when a
    /// PD name has no `spread` tag).
    pub mode: DeployMode,
    pub collocated: Option<Replicas>,
    pub prefill: Option<Replicas>,
    pub decode: Option<Replicas>,
    /// Whether the name said `tpep` (TP with expert parallelism).
    pub expert_parallel: bool,
    pub gpu: Option<GpuKind>,
    /// Network tags found (`ucx`, `libfabric`, `tcp`, `srd`, `efa`, `ib`).
    pub network: Vec<String>,
    pub total_gpus: u32,
}

const NETWORK_TAGS: [&str; 6] = ["ucx", "libfabric", "tcp", "srd", "efa", "ib"];

/// Parse a directory name (or a bare label).
pub fn parse_label(name: &str) -> Result<ParsedLabel> {
    let base = name
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(name);
    let mut configs = Vec::new();
    let mut gpu = None;
    let mut spread = false;
    let mut network = Vec::new();
    for token in base.split('_') {
        let lower = token.to_ascii_lowercase();
        match lower.as_str() {
            "h200" => gpu = Some(GpuKind::H200),
            "h100" => gpu = Some(GpuKind::H100),
            "spread" => spread = true,
            t if NETWORK_TAGS.contains(&t) => network.push(t.to_string()),
            _ => {
                if let Some(c) = parse_config_token(&lower) {
                    configs.push(c);
                }
            }
        }
    }
    let config = match configs.len() {
        1 => configs.remove(0),
        0 => {
            return Err(Error::invalid(
                "deployment label",
                format!("no configuration (like 4xtp2 or p1xtp2-d2xtp2) found in '{base}'"),
            ))
        }
        _ => {
            return Err(Error::invalid(
                "deployment label",
                format!("several configurations found in '{base}'; cannot tell which one applies"),
            ))
        }
    };
    let (mode, collocated, prefill, decode, label, total) = match config.layout {
        Layout::Collocated(c) => (
            DeployMode::Collocated,
            Some(c),
            None,
            None,
            format!("{}xtp{}", c.num, c.tp),
            c.gpus(),
        ),
        Layout::Pd(p, d) => (
            if spread {
                DeployMode::PdSpread
            } else {
                DeployMode::PdPack
            },
            None,
            Some(p),
            Some(d),
            format!("p{}xtp{}-d{}xtp{}", p.num, p.tp, d.num, d.tp),
            p.gpus() + d.gpus(),
        ),
    };
    Ok(ParsedLabel {
        label,
        mode,
        collocated,
        prefill,
        decode,
        expert_parallel: config.ep,
        gpu,
        network,
        total_gpus: total,
    })
}

enum Layout {
    Collocated(Replicas),
    Pd(Replicas, Replicas),
}

struct Config {
    layout: Layout,
    ep: bool,
}

/// `<num>` + marker + `tp`/`tpep` + `<tp>`; returns (replicas, ep).
fn parse_group(s: &str, prefix: &str, marker: &str) -> Option<(Replicas, bool)> {
    let s = s.strip_prefix(prefix)?;
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let num: u32 = s[..digits].parse().ok()?;
    let rest = s[digits..].strip_prefix(marker)?;
    let (rest, ep) = match rest.strip_prefix("tpep") {
        Some(r) => (r, true),
        None => (rest.strip_prefix("tp")?, false),
    };
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let tp: u32 = rest.parse().ok()?;
    if num == 0 || tp == 0 {
        return None;
    }
    Some((Replicas { num, tp }, ep))
}

fn parse_config_token(t: &str) -> Option<Config> {
    if let Some((a, b)) = t.split_once('-') {
        let forms: [(&str, &str, &str, &str); 3] =
            [("p", "x", "d", "x"), ("", "x", "", "x"), ("", "p", "", "d")];
        for (pa, ma, pb, mb) in forms {
            if let (Some((p, e1)), Some((d, e2))) = (parse_group(a, pa, ma), parse_group(b, pb, mb))
            {
                return Some(Config {
                    layout: Layout::Pd(p, d),
                    ep: e1 || e2,
                });
            }
        }
        return None;
    }
    parse_group(t, "", "x").map(|(c, ep)| Config {
        layout: Layout::Collocated(c),
        ep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(name: &str) -> u32 {
        parse_label(name).unwrap().total_gpus
    }

    #[test]
    fn legacy_forms() {
        assert_eq!(gpus("4xtp2"), 8);
        assert_eq!(gpus("p1xtp4-d1xtp4"), 8);
        assert_eq!(gpus("1xtp2-3xtp2"), 8);
        assert_eq!(gpus("4ptp1-2dtp2"), 8);
        let ep = parse_label("1xtpep4-1xtpep4").unwrap();
        assert!(ep.expert_parallel);
        assert_eq!(ep.total_gpus, 8);
        let h = parse_label("gptoss_H200_itl5000_otl250_mixed_spread_p1xtp4-d1xtp4").unwrap();
        assert_eq!(
            (h.gpu, h.mode, h.label.as_str()),
            (Some(GpuKind::H200), DeployMode::PdSpread, "p1xtp4-d1xtp4")
        );
        let t = parse_label("gptoss_itl5000_otl250_mixed_spread_tcp_p1xtp4-d1xtp4").unwrap();
        assert_eq!(t.network, vec!["tcp".to_string()]);
        let b = parse_label("bm_results/gptoss_itl5000_otl250_mixed_baseline_2xtp4/").unwrap();
        assert_eq!((b.mode, b.total_gpus), (DeployMode::Collocated, 8));
        assert_eq!(gpus("gptoss_itl5000_otl250_mixed_pd_p2xtp2-d1xtp4"), 8);
        assert_eq!(gpus("gptoss_itl5000_otl250_mixed_pd_p1xtp2-d2xtp2"), 6);
    }

    #[test]
    fn unparseable_names_are_reported() {
        for bad in [
            "gptoss_itl5000_otl250_mixed_myexp",
            "xtp2",
            "4xtp",
            "4xtp2_2xtp4",
            "p1xtp2-dx",
        ] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }
}
