//! `viz --probe FILE…`: the NIXL transfer probe's result files (written by `launch-gptoss
//! probe`, format in docs/FORMATS.md) as a table, and a figure with two panels: bandwidth
//! against bytes per transfer, and one-block latency against block size, one series per
//! (file, placement, NIXL backend, P/D TP shape, memory).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pd_common::probe::{ProbeFile, ProbeResult};

use crate::cli::Cli;
use crate::error::VizError;
use crate::outputs::{self, Provenance};
use crate::plot::figure::{Figure, LegendEntry, Panel, Series};

/// File word of the probe figure (`<name>_nixl_probe.png`).
pub const FILE_WORD: &str = "nixl_probe";

/// A probe file and the name it is shown under.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub name: String,
    pub file: ProbeFile,
}

/// Read every file; unreadable ones become warnings.
pub fn load(paths: &[PathBuf]) -> (Vec<Loaded>, Vec<String>) {
    let mut ok = Vec::new();
    let mut warnings = Vec::new();
    for p in paths {
        match ProbeFile::read(p) {
            Ok(file) => ok.push(Loaded {
                path: p.clone(),
                name: p.file_stem().map_or_else(
                    || p.display().to_string(),
                    |s| s.to_string_lossy().into_owned(),
                ),
                file,
            }),
            Err(e) => warnings.push(format!("skipping probe file {}: {e}", p.display())),
        }
    }
    (ok, warnings)
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn nodes(r: &ProbeResult) -> String {
    match (&r.p_node, &r.d_node, &r.link) {
        (Some(p), Some(d), _) => format!("{p} -> {d}"),
        (_, _, Some(l)) => format!("sim {l}"),
        _ => "-".into(),
    }
}

/// The table: one row per configuration of every file.
pub fn table(files: &[Loaded]) -> String {
    let head = [
        "file",
        "configuration",
        "memory",
        "nodes",
        "GB/s",
        "latency us",
        "p50 ms",
        "first ms",
        "data",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
    for l in files {
        for r in &l.file.results {
            rows.push(vec![
                l.name.clone(),
                r.config.label(),
                r.config.memory.to_string(),
                nodes(r),
                fmt(r.figures.bandwidth_gbps, 3),
                fmt(r.figures.latency_us, 1),
                fmt(r.figures.transfer_ms.map(|t| t.p50), 2),
                fmt(r.figures.first_transfer_ms, 1),
                match &r.error {
                    Some(e) => format!("FAILED: {e}"),
                    None => r.integrity(),
                },
            ]);
        }
    }
    let cols = head.len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::from("NIXL transfer probe\n");
    for (k, r) in rows.iter().enumerate() {
        let line = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if (4..8).contains(&i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ");
        s.push_str(line.trim_end());
        s.push('\n');
        if k == 0 {
            s.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1)));
            s.push('\n');
        }
    }
    s
}

/// Points of one series: (bandwidth panel, latency panel).
type Points = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// The figure: bandwidth vs MiB per transfer, latency vs block size (KiB), both log-log.
pub fn figure(files: &[Loaded], name: &str) -> Option<Figure> {
    // series key → (bandwidth points, latency points)
    let mut groups: BTreeMap<String, Points> = BTreeMap::new();
    for l in files {
        for r in files_results(l) {
            let c = &r.config;
            let mut key = format!(
                "{} {} P{}:D{} {}",
                c.placement, c.nixl_backend, c.p_tp, c.d_tp, c.memory
            );
            if files.len() > 1 {
                key = format!("{}: {key}", l.name);
            }
            let g = groups.entry(key).or_default();
            if let Some(bw) = r.figures.bandwidth_gbps.filter(|v| *v > 0.0) {
                g.0.push((c.bytes_per_transfer() as f64 / (1u64 << 20) as f64, bw));
            }
            if let Some(lat) = r.figures.latency_us.filter(|v| *v > 0.0) {
                g.1.push((c.block_bytes as f64 / 1024.0, lat));
            }
        }
    }
    groups.retain(|_, (bw, _)| !bw.is_empty());
    if groups.is_empty() {
        return None;
    }
    let series = |pick: fn(&Points) -> &Vec<(f64, f64)>| -> Vec<Series> {
        groups
            .iter()
            .enumerate()
            .map(|(i, (k, g))| {
                let mut pts = pick(g).clone();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series::new(i, k.clone(), pts)
            })
            .collect()
    };
    let panels = vec![
        Panel {
            title: "Bandwidth".into(),
            x_label: "MiB per transfer".into(),
            y_label: "GB/s (median transfer)".into(),
            x_log: true,
            y_log: true,
            series: series(|g| &g.0),
            frontier: None,
        },
        Panel {
            title: "Latency of a one-block transfer".into(),
            x_label: "block size (KiB, per D rank)".into(),
            y_label: "µs (median)".into(),
            x_log: true,
            y_log: true,
            series: series(|g| &g.1),
            frontier: None,
        },
    ];
    let legend = groups
        .keys()
        .enumerate()
        .map(|(index, name)| LegendEntry {
            index,
            name: name.clone(),
        })
        .collect();
    let mut subtitle: Vec<String> = files
        .iter()
        .map(|l| {
            let e = &l.file.environment;
            match l.file.backend.as_str() {
                "sim" => format!(
                    "{}: simulator {} ({})",
                    l.name,
                    e.sim_gpu.as_deref().unwrap_or("?"),
                    e.sim_network.as_deref().unwrap_or("no spread")
                ),
                _ => format!(
                    "{}: Ray {}, NIXL {}, {} node(s)",
                    l.name,
                    e.ray_version.as_deref().unwrap_or("?"),
                    e.nixl_version.as_deref().unwrap_or("?"),
                    e.nodes.len()
                ),
            }
        })
        .collect();
    subtitle.dedup();
    let failed: usize = files
        .iter()
        .map(|l| l.file.results.iter().filter(|r| !r.ok()).count())
        .sum();
    let mut notes = vec![
        "Bandwidth: bytes of one transfer (every P rank's blocks) / median transfer time; GB = 1e9 bytes.".into(),
    ];
    if failed > 0 {
        notes.push(format!(
            "{failed} configuration(s) failed or arrived corrupted and are not drawn: see the table."
        ));
    }
    Some(Figure {
        title: format!("{name}: NIXL transfer probe"),
        subtitle,
        panels,
        legend,
        notes,
        panel_size: (1200, 1050),
    })
}

/// Only intact measurements are drawn.
fn files_results(l: &Loaded) -> impl Iterator<Item = &ProbeResult> {
    l.file.results.iter().filter(|r| r.ok())
}

/// `viz --probe`: table to `out`, figure into `--plot-path` (unless `--no-plot`).
pub fn run(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let (files, warnings) = load(&cli.probe);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if files.is_empty() {
        return Err(VizError::NoUsableData {
            dirs: cli
                .probe
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    }
    if cli.show_tables() {
        writeln!(out, "{}", table(&files))?;
    }
    if !cli.make_plots() {
        return Ok(());
    }
    let paths: Vec<PathBuf> = files.iter().map(|l| l.path.clone()).collect();
    let name = match &cli.name {
        Some(n) => outputs::sanitize(n),
        None => {
            let names: Vec<String> = files.iter().map(|l| l.name.clone()).collect();
            outputs::derived_stem(&names, &paths)
        }
    };
    let Some(fig) = figure(&files, &name) else {
        tracing::warn!("no intact measurement in the probe files: nothing to plot");
        return Ok(());
    };
    let provenance = Provenance::new(&name, &paths);
    for f in cli.formats() {
        let bytes = crate::plot::output::render(&fig, f, Some(&provenance))
            .context("drawing the probe plot")?;
        let path: PathBuf = cli
            .plot_path
            .join(format!("{name}_{FILE_WORD}.{}", f.extension()));
        pd_common::fsutil::write_replace(&path, &bytes).context("writing the probe plot")?;
        writeln!(out, "Saved probe plot to: {}", display(&path))?;
    }
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::NixlBackend;
    use pd_common::probe::{Placement, ProbeConfig, ProbeEnvironment, ProbeFigures, ProbeMemory};

    fn result(placement: Placement, blocks: u32, bw: Option<f64>) -> ProbeResult {
        let config = ProbeConfig {
            id: format!("c{blocks}"),
            placement,
            nixl_backend: NixlBackend::Ucx,
            memory: ProbeMemory::Dram,
            p_tp: 1,
            d_tp: 1,
            block_bytes: 32768,
            blocks,
            iterations: 3,
        };
        match bw {
            Some(b) => ProbeResult {
                p_node: Some("a".into()),
                d_node: Some("b".into()),
                figures: ProbeFigures {
                    bandwidth_gbps: Some(b),
                    latency_us: Some(40.0),
                    slices_checked: Some(u64::from(blocks)),
                    corrupt_slices: Some(0),
                    ..ProbeFigures::default()
                },
                error: None,
                ..ProbeResult::failed(config, "")
            },
            None => ProbeResult::failed(config, "NIXL backend LIBFABRIC is not available"),
        }
    }

    fn loaded() -> Loaded {
        let mut file = ProbeFile::new("ray", vec![], ProbeEnvironment::default());
        file.results = vec![
            result(Placement::Spread, 64, Some(0.5)),
            result(Placement::Spread, 1024, Some(0.7)),
            result(Placement::Pack, 64, Some(0.9)),
            result(Placement::Pack, 1024, None),
        ];
        Loaded {
            path: "probe.json".into(),
            name: "probe".into(),
            file,
        }
    }

    #[test]
    fn table_lists_every_configuration_with_failures_spelt_out() {
        let t = table(&[loaded()]);
        assert!(t.contains("spread ucx P1:D1 32KiB×1024"), "{t}");
        assert!(t.contains("0.700"), "{t}");
        assert!(
            t.contains("FAILED: NIXL backend LIBFABRIC is not available"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 2 + 1 + 4);
    }

    #[test]
    fn figure_draws_intact_measurements_only() {
        let f = figure(&[loaded()], "x").unwrap();
        let bw = &f.panels[0];
        assert_eq!(bw.series.len(), 2, "pack and spread");
        let spread = bw
            .series
            .iter()
            .find(|s| s.name.starts_with("spread"))
            .unwrap();
        assert_eq!(spread.points, vec![(2.0, 0.5), (32.0, 0.7)]);
        let pack = bw
            .series
            .iter()
            .find(|s| s.name.starts_with("pack"))
            .unwrap();
        assert_eq!(pack.points.len(), 1, "the failed one is left out");
        assert!(f
            .notes
            .iter()
            .any(|n| n.contains("1 configuration(s) failed")));
        let png = crate::plot::output::render_png(&f, None).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let mut empty = loaded();
        empty.file.results.retain(|r| !r.ok());
        assert!(figure(&[empty], "x").is_none());
    }
}
