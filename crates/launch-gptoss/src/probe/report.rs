//! What `launch-gptoss probe` prints: the result table (one row per configuration), and
//! for a dry run the placements and the job it would submit.

use pd_common::probe::{ProbeFile, ProbeResult};

use super::options::RayProbe;
use super::ray::Prepared;

fn nodes(r: &ProbeResult) -> String {
    match (&r.p_node, &r.d_node, &r.link) {
        (Some(p), Some(d), _) => format!("{p} -> {d}"),
        (_, _, Some(link)) => format!("sim {link}"),
        _ => "-".into(),
    }
}

fn opt(v: Option<f64>, digits: usize, unit: &str) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$} {unit}"))
}

/// The result table, one line per configuration (errors spelt out).
pub fn table(file: &ProbeFile) -> Vec<String> {
    let mut rows = vec![[
        "configuration".to_string(),
        "nodes".to_string(),
        "bandwidth".to_string(),
        "latency".to_string(),
        "transfer p50".to_string(),
        "first".to_string(),
        "data".to_string(),
    ]];
    let mut errors = Vec::new();
    for r in &file.results {
        if let Some(e) = &r.error {
            errors.push(format!("  {}: {e}", r.config.id));
        }
        rows.push([
            format!("{} {}", r.config.id, r.config.label()),
            nodes(r),
            opt(r.figures.bandwidth_gbps, 3, "GB/s"),
            opt(r.figures.latency_us, 1, "us"),
            opt(r.figures.transfer_ms.map(|t| t.p50), 2, "ms"),
            opt(r.figures.first_transfer_ms, 1, "ms"),
            if r.error.is_some() {
                "FAILED".into()
            } else {
                r.integrity()
            },
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect();
    if !errors.is_empty() {
        out.push("errors:".into());
        out.extend(errors);
    }
    out
}

/// A dry run's report: the cluster, each configuration's placement, the job.
pub fn dry_run(p: &Prepared, opts: &RayProbe) -> String {
    let mut s = format!(
        "cluster {}: Ray {}, alive nodes: {}\n",
        opts.dashboard,
        p.ray_version,
        p.nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| format!("{} ({} GPUs)", n.ip, n.gpus))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (c, a) in &p.assignments {
        match a {
            Ok((pn, dn)) => {
                s.push_str(&format!("  {} {}: P on {pn}, D on {dn}\n", c.id, c.label()))
            }
            Err(e) => s.push_str(&format!("  {} {}: not placed: {e}\n", c.id, c.label())),
        }
    }
    match &p.submission {
        Some(sub) => s.push_str(&format!(
            "would submit job {} (POST /api/jobs/, entrypoint `{} -c …`, {} bytes); its program follows on stdout\n",
            sub.submission_id,
            opts.python,
            sub.entrypoint.len()
        )),
        None => s.push_str("nothing to submit: no configuration can be placed\n"),
    }
    s
}
