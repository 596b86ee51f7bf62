//! `--report`: a Markdown findings file with the plots, the tables, the SLA picks, which
//! differences are significant, and the methodology's reproducibility checklist filled
//! from the experiments' manifests (items no manifest records are marked **missing**,
//! never guessed); and the same as one self-contained HTML file ([`crate::html`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::cli::ReportFormat;
use crate::error::{Result, VizError};
use crate::load::Experiment;
use crate::settings::Settings;
use crate::significance;
use crate::sla::SlaSummary;
use crate::table::{format_sweep_value, Table};

/// One figure of the report: its files and, for the HTML report, its SVG markup.
#[derive(Debug, Clone, Default)]
pub struct ReportFigure {
    pub title: String,
    pub files: Vec<PathBuf>,
    pub svg: Option<String>,
}

/// Everything a report shows.
pub struct ReportInput<'a> {
    pub name: &'a str,
    pub experiments: &'a [Experiment],
    pub workload: Option<&'a str>,
    pub tables: &'a [Table],
    pub sla: Option<&'a SlaSummary>,
    pub significance: Option<&'a significance::Summary>,
    /// Figures written (empty when plots were disabled).
    pub figures: &'a [ReportFigure],
    pub warnings: &'a [String],
    /// The viz command line.
    pub command: &'a [String],
    pub settings: &'a Settings,
}

impl ReportInput<'_> {
    /// Every plot file written.
    pub fn plot_files(&self) -> Vec<PathBuf> {
        self.figures.iter().flat_map(|f| f.files.clone()).collect()
    }
}

/// Quote an argv for a shell (single quotes where needed).
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `target` relative to the directory `base` (both made absolute first).
pub fn relative_path(target: &Path, base: &Path) -> PathBuf {
    let abs = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let (t, b) = (abs(target), abs(base));
    let tc: Vec<Component> = t.components().collect();
    let bc: Vec<Component> = b.components().collect();
    let common = tc.iter().zip(&bc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return t;
    }
    let mut out = PathBuf::new();
    for _ in common..bc.len() {
        out.push("..");
    }
    for c in &tc[common..] {
        out.push(c.as_os_str());
    }
    out
}

const MISSING: &str = "**missing**";

fn item(out: &mut String, title: &str, value: Option<String>) {
    match value {
        Some(v) => {
            let _ = writeln!(out, "- [x] {title}: {v}");
        }
        None => {
            let _ = writeln!(out, "- [ ] {title}: {MISSING}");
        }
    }
}

fn item_missing_because(out: &mut String, title: &str, why: &str) {
    let _ = writeln!(out, "- [ ] {title}: {MISSING} ({why})");
}

fn map_text(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn checklist(out: &mut String, e: &Experiment, plots: &[PathBuf]) {
    let repeats = e.points.iter().map(|p| p.repeat_count()).max().unwrap_or(1);
    let _ = writeln!(out, "\n### {}\n", e.name);
    let m = e.manifest.as_ref();
    let d = m.and_then(|m| m.deployment.as_ref());
    let no_manifest = "no manifest.json in the result directory";
    let no_record = "the manifest has no deployment record";

    // Deployment command.
    match (m, d) {
        (None, _) => item_missing_because(out, "Deployment command", no_manifest),
        (Some(_), None) => item_missing_because(out, "Deployment command", no_record),
        (Some(_), Some(d)) => item(
            out,
            "Deployment command",
            (!d.command.is_empty()).then(|| format!("`{}`", shell_join(&d.command))),
        ),
    }
    // Benchmark command.
    match m {
        None => item_missing_because(out, "Benchmark command", no_manifest),
        Some(m) => item(
            out,
            "Benchmark command",
            (!m.command.is_empty()).then(|| format!("`{}`", shell_join(&m.command))),
        ),
    }
    // Hardware.
    let from_name = e.label.as_ref().map(|l| {
        let gpu = l.gpu.map(|g| format!("{g}, ")).unwrap_or_default();
        format!(
            "directory name says {gpu}{}, {}, {} GPUs",
            l.mode, l.label, l.total_gpus
        )
    });
    match d {
        Some(d) => {
            let nodes = if d.nodes.is_empty() {
                "nodes not recorded".to_string()
            } else {
                format!("{} node(s): {}", d.nodes.len(), d.nodes.join(", "))
            };
            let client = m
                .map(|m| {
                    let c = &m.client_host;
                    format!(
                        "; client {} ({}/{}, {} CPUs)",
                        c.hostname, c.os, c.arch, c.cpus
                    )
                })
                .unwrap_or_default();
            item(
                out,
                "Hardware",
                Some(format!(
                    "{} GPUs ({}) of {} per node on {nodes}; network: {}; backend: {}{client}",
                    d.total_gpus,
                    d.spec.gpu,
                    d.gpus_per_node,
                    d.network.as_deref().unwrap_or("not recorded"),
                    d.backend
                )),
            );
        }
        None => {
            let why = if m.is_none() { no_manifest } else { no_record };
            match &from_name {
                Some(n) => item_missing_because(out, "Hardware", &format!("{why}; {n}")),
                None => item_missing_because(out, "Hardware", why),
            }
        }
    }
    // Software.
    match m {
        None => item_missing_because(out, "Software versions", no_manifest),
        Some(m) => {
            let mut all = m.software.clone();
            if let Some(d) = d {
                for (k, v) in &d.software {
                    all.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            let mut parts = vec![format!("{} {}", m.tool, m.tool_version)];
            parts.extend(all.iter().map(|(k, v)| format!("{k} {v}")));
            item(out, "Software versions", Some(parts.join(", ")));
        }
    }
    // Workload.
    match m {
        Some(m) => item(
            out,
            "Workload",
            Some(format!(
                "ITL {}, OTL {}, mode {}, {} sweep {}; model `{}`",
                m.workload.itl,
                m.workload.otl,
                m.workload.mode,
                m.sweep,
                m.sweep_values
                    .iter()
                    .map(|v| format_sweep_value(*v))
                    .collect::<Vec<_>>()
                    .join(","),
                m.served_model_name
            )),
        ),
        None => {
            let first = &e.points[0].result;
            let values = e
                .points
                .iter()
                .map(|p| format_sweep_value(p.value))
                .collect::<Vec<_>>()
                .join(",");
            let mean_in = first.total_input_tokens as f64 / first.completed.max(1) as f64;
            let mean_out = first.total_output_tokens as f64 / first.completed.max(1) as f64;
            item_missing_because(
                out,
                "Workload",
                &format!(
                    "{no_manifest}; the result files record model `{}`, {} {values}, \
                     mean {mean_in:.0} input / {mean_out:.0} output tokens per request at the first point",
                    first.model_id, e.points[0].kind
                ),
            );
        }
    }
    // Repeats.
    item(
        out,
        "Repeated runs",
        Some(if repeats > 1 {
            format!("up to {repeats} runs per point (95 % confidence intervals in the figures)")
        } else {
            "one run per point (no confidence intervals; run-bm --repeat K gives them)".to_string()
        }),
    );
    // Result location.
    item(
        out,
        "Result location",
        Some(format!("`{}`", e.dir.display())),
    );
    // Figures.
    item(
        out,
        "Generated figures",
        (!plots.is_empty()).then(|| {
            plots
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        }),
    );
    // Environment.
    match m {
        None => item_missing_because(out, "Environment variables", no_manifest),
        Some(m) => {
            let mut env = m.env.clone();
            if let Some(d) = d {
                for (k, v) in &d.env {
                    env.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            item(
                out,
                "Environment variables",
                Some(if env.is_empty() {
                    "none of the recorded kinds (UCX_, NIXL_, VLLM_, …) were set".to_string()
                } else {
                    map_text(&env)
                }),
            );
        }
    }
}

/// The report's Markdown; plot links are relative to `report_dir`.
pub fn render(input: &ReportInput, report_dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", input.name);
    let _ = writeln!(
        out,
        "Generated by `viz` {} on {}.\n",
        pd_common::VERSION,
        chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    );
    let _ = writeln!(out, "Command: `{}`\n", shell_join(input.command));
    if let Some(w) = input.workload {
        let _ = writeln!(out, "Workload (from the directory names): {w}.\n");
    }
    let s = input.settings;
    let _ = writeln!(
        out,
        "Throughput is {}.\n",
        if s.use_normalized {
            format!(
                "normalised to one node: value × {} / GPUs of the deployment",
                s.gpus_per_node
            )
        } else {
            "raw (not normalised)".to_string()
        }
    );

    let _ = writeln!(out, "## Experiments\n");
    let _ = writeln!(out, "| Name | Directory | GPUs | GPU count from | Points |");
    let _ = writeln!(out, "|---|---|---:|---|---|");
    for e in input.experiments {
        let pts = e
            .points
            .iter()
            .map(|p| format_sweep_value(p.value))
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} {} |",
            e.name,
            e.dir.display(),
            e.total_gpus.map_or("?".to_string(), |g| g.to_string()),
            e.gpu_source.describe(),
            e.points[0].kind,
            pts
        );
    }

    let _ = writeln!(out, "\n## Figures\n");
    if input.figures.is_empty() {
        let _ = writeln!(out, "No figures were generated (--no-plot).");
    }
    for f in input.figures {
        let _ = writeln!(out, "### {}\n", f.title);
        let shown = f
            .files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == "png"))
            .or_else(|| f.files.first());
        if let Some(p) = shown {
            let _ = writeln!(
                out,
                "![{}]({})\n",
                file_name(p),
                relative_path(p, report_dir).display()
            );
        }
        if f.files.len() > 1 {
            let links: Vec<String> = f
                .files
                .iter()
                .map(|p| {
                    format!(
                        "[{}]({})",
                        file_name(p),
                        relative_path(p, report_dir).display()
                    )
                })
                .collect();
            let _ = writeln!(out, "Files: {}\n", links.join(", "));
        }
    }

    if let Some(sla) = input.sla {
        let _ = writeln!(out, "\n## Best under SLA\n");
        out.push_str(&sla.to_markdown());
    }

    if let Some(sig) = input.significance {
        let _ = writeln!(out, "\n## Significance of differences\n");
        out.push_str(&sig.to_markdown());
    }

    let _ = writeln!(out, "\n## Tables\n");
    for t in input.tables {
        out.push_str(&t.to_markdown());
        out.push('\n');
    }

    if !input.warnings.is_empty() {
        let _ = writeln!(out, "## Warnings\n");
        for w in input.warnings {
            let _ = writeln!(out, "- {w}");
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Reproducibility checklist");
    let _ = writeln!(
        out,
        "\nFilled from each directory's `manifest.json`; what it does not record is marked {MISSING}."
    );
    let plots = input.plot_files();
    for e in input.experiments {
        checklist(&mut out, e, &plots);
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The HTML report: the Markdown's content in one file, figures inlined as SVG.
pub fn render_html(input: &ReportInput, report_dir: &Path) -> String {
    let md = render(input, report_dir);
    let mut images = HashMap::new();
    for f in input.figures {
        let Some(svg) = &f.svg else { continue };
        for p in &f.files {
            images.insert(
                relative_path(p, report_dir).display().to_string(),
                crate::html::inline_svg(svg),
            );
        }
    }
    crate::html::render(&md, input.name, &images)
}

/// Write `<dir>/<name>.md` and/or `<dir>/<name>.html`; returns the paths.
pub fn write(input: &ReportInput, dir: &Path, formats: &[ReportFormat]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| VizError::io(dir, e))?;
    let mut written = Vec::new();
    for f in formats {
        let (ext, text) = match f {
            ReportFormat::Md => ("md", render(input, dir)),
            ReportFormat::Html => ("html", render_html(input, dir)),
        };
        let path = dir.join(format!("{}.{ext}", input.name));
        pd_common::fsutil::write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_relative_paths() {
        assert_eq!(
            shell_join(&["run-bm".into(), "-e".into(), "a b".into(), "it's".into()]),
            "run-bm -e 'a b' 'it'\\''s'"
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("results/findings")).unwrap();
        std::fs::create_dir_all(d.path().join("plots")).unwrap();
        let rel = relative_path(
            &d.path().join("plots/x.png"),
            &d.path().join("results/findings"),
        );
        assert_eq!(rel, PathBuf::from("../../plots/x.png"));
    }
}
