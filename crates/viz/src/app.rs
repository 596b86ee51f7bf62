//! The `viz` program: load, tables, SLA picks, plots, report.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::cli::Cli;
use crate::error::VizError;
use crate::load::{load_experiments, Experiment};
use crate::plot::{self, PlotType};
use crate::report::{self, ReportInput};
use crate::sla;
use crate::table;

/// Output file name stem: `--name`, else the single directory's name, else `comparison`.
pub fn output_name(cli: &Cli, experiments: &[Experiment]) -> String {
    let raw = match (&cli.name, cli.dirs().len(), experiments.first()) {
        (Some(n), _, _) => n.clone(),
        (None, 1, Some(e)) => e.dir_name.clone(),
        (None, 1, None) => crate::load::dir_basename(&cli.dirs()[0]),
        _ => "comparison".to_string(),
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "comparison".to_string()
    } else {
        clean
    }
}

fn describe(e: &Experiment) -> String {
    let gpus = match e.total_gpus {
        Some(g) => format!("{g} GPUs (from {})", e.gpu_source.describe()),
        None => "GPUs unknown: unnormalised".to_string(),
    };
    let pts = e
        .points
        .iter()
        .map(|p| table::format_sweep_value(p.value))
        .collect::<Vec<_>>()
        .join(",");
    let kinds = e
        .kinds()
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join("+");
    format!(
        "  {}\n      dir: {}\n      {gpus}; {} point(s), {kinds} {pts}",
        e.name,
        e.dir.display(),
        e.points.len()
    )
}

/// Run with parsed arguments; tables and progress go to `out`, warnings to `err`.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let dirs = cli.dirs();
    let settings = cli.settings();
    let loaded = load_experiments(&dirs);
    for w in &loaded.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let mut warnings = loaded.warnings.clone();
    let experiments = loaded.experiments;
    if experiments.is_empty() {
        return Err(VizError::NoUsableData {
            dirs: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    }
    let name = output_name(cli, &experiments);
    writeln!(out, "Loaded {} experiment(s):", experiments.len())?;
    for e in &experiments {
        writeln!(out, "{}", describe(e))?;
    }

    let tables = table::build_tables(&experiments, settings.gpus_per_node);
    if cli.show_tables() {
        write!(
            out,
            "{}",
            table::render_all(&tables, settings.gpus_per_node, cli.table_width())
        )?;
    }
    if let Some(dir) = &cli.csv {
        let paths = table::write_all_csv(&tables, dir, &name)
            .with_context(|| format!("writing CSV tables into {}", dir.display()))?;
        writeln!(
            out,
            "\nWrote {} CSV table(s) into {}",
            paths.len(),
            dir.display()
        )?;
    }

    let slo = cli.slo();
    let sla_summary = slo
        .is_set()
        .then(|| sla::summarize(&experiments, &settings, slo));
    if let Some(s) = &sla_summary {
        writeln!(out, "\n{}", s.render_text())?;
    }

    let mut plots: Vec<PathBuf> = Vec::new();
    if cli.make_plots() {
        let formats = cli.formats();
        for pt in PlotType::expand(&cli.plot_type) {
            let paths = plot::write_plot(
                pt,
                &experiments,
                &settings,
                &name,
                loaded.workload.as_deref(),
                &cli.plot_path,
                &formats,
            )
            .with_context(|| format!("writing the {} plot", pt.as_str()))?;
            for p in &paths {
                writeln!(out, "Saved {} plot to: {}", pt.as_str(), p.display())?;
            }
            plots.extend(paths);
        }
    }

    if cli.report {
        let command: Vec<String> = std::env::args().collect();
        if cli.no_plot {
            warnings.push("report written without figures (--no-plot)".to_string());
        }
        let input = ReportInput {
            name: &name,
            experiments: &experiments,
            workload: loaded.workload.as_deref(),
            tables: &tables,
            sla: sla_summary.as_ref(),
            plots: &plots,
            warnings: &warnings,
            command: &command,
            settings: &settings,
        };
        let path = report::write(&input, &cli.report_dir)
            .with_context(|| format!("writing the report into {}", cli.report_dir.display()))?;
        writeln!(out, "Wrote report: {}", path.display())?;
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "viz done"
    );
    Ok(())
}
