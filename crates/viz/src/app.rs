//! The `viz` program: load, tables, SLA picks, significance, plots, report. Results go to
//! the `out` writer (stdout in the binary); every diagnostic goes through `tracing`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{Cli, ReportFormat};
use crate::error::VizError;
use crate::load::{load_experiments, Experiment};
use crate::outputs::{self, Provenance, Replaced};
use crate::plot::{self, Format, PlotType};
use crate::report::{self, ReportFigure, ReportInput};
use crate::significance;
use crate::sla;
use crate::table;

/// Stdout for results: a closed pipe (`viz … | head`) is "nobody is reading", not an
/// error, so the plots are still written (`pd_common::diag::write_stdout`).
pub struct StdoutSink;

impl Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        pd_common::diag::write_stdout(format_args!("{}", String::from_utf8_lossy(buf)), false);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The output stem before collision checks: `--name`, else derived from the directories
/// (see [`outputs::derived_stem`]); and whether the user chose it.
pub fn output_name(cli: &Cli, experiments: &[Experiment]) -> (String, bool) {
    match &cli.name {
        Some(n) => (outputs::sanitize(n), true),
        None => {
            let names: Vec<String> = if experiments.len() == 1 {
                vec![experiments[0].dir_name.clone()]
            } else {
                experiments.iter().map(|e| e.name.clone()).collect()
            };
            let dirs: Vec<PathBuf> = experiments.iter().map(|e| e.dir.clone()).collect();
            (outputs::derived_stem(&names, &dirs), false)
        }
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
    let runs = e.points.iter().map(|p| p.repeat_count()).max().unwrap_or(1);
    let runs = if runs > 1 {
        format!("; up to {runs} runs per point")
    } else {
        String::new()
    };
    format!(
        "  {}\n      dir: {}\n      {gpus}; {} point(s), {kinds} {pts}{runs}",
        e.name,
        e.dir.display(),
        e.points.len()
    )
}

fn warn(warnings: &mut Vec<String>, w: String) {
    tracing::warn!("{w}");
    warnings.push(w);
}

/// Run with parsed arguments; tables and progress lines go to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let started = Instant::now();
    if !cli.probe.is_empty() {
        crate::probe::run(cli, out)?;
        if cli.dirs().is_empty() {
            return Ok(());
        }
    }
    let dirs = cli.dirs();
    let settings = cli.settings();
    let loaded = load_experiments(&dirs);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
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
    let exp_dirs: Vec<PathBuf> = experiments.iter().map(|e| e.dir.clone()).collect();
    let (title_name, explicit) = output_name(cli, &experiments);

    // The figures to draw (their file words decide the names checked for collisions).
    let mut planned = Vec::new();
    if cli.make_plots() {
        let requested = &cli.plot_type;
        for pt in PlotType::expand(requested) {
            let (figs, problems) = plot::plan(
                pt,
                &experiments,
                &settings,
                &title_name,
                loaded.workload.as_deref(),
            );
            for p in problems {
                warn(&mut warnings, p);
            }
            if figs.is_empty() && pt == PlotType::ServerMetrics {
                let msg = "no server metrics (P.metrics.csv next to the points) in the given \
                           directories: server-metrics plot skipped";
                if requested.contains(&PlotType::ServerMetrics) {
                    warn(&mut warnings, msg.to_string());
                } else {
                    tracing::info!("{msg}");
                }
            }
            planned.extend(figs);
        }
    }
    let formats = cli.formats();
    let files_of = |stem: &str| -> Vec<PathBuf> {
        planned
            .iter()
            .flat_map(|p| {
                formats.iter().map(move |f| {
                    cli.plot_path
                        .join(format!("{stem}_{}.{}", p.word, f.extension()))
                })
            })
            .collect()
    };
    let (name, foreign) = outputs::resolve_stem(&title_name, explicit, &exp_dirs, files_of);
    if let Some(f) = foreign {
        if explicit {
            warn(
                &mut warnings,
                format!(
                    "--name {name}: replacing {}, which showed a comparison of other directories",
                    f.display()
                ),
            );
        } else {
            warn(
                &mut warnings,
                format!(
                    "{} shows a comparison of other directories; this comparison is written \
                     as {name}_… instead (give --name to choose the name)",
                    f.display()
                ),
            );
        }
    }

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
        let paths = table::write_all_csv(&tables, &experiments, settings.gpus_per_node, dir, &name)
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
    let sig = (experiments.len() >= 2).then(|| significance::compare(&experiments, &settings));
    if let Some(s) = &sig {
        writeln!(out, "\n{}", s.render_text().trim_end())?;
    }

    let want_html = cli.report && cli.report_formats().contains(&ReportFormat::Html);
    let provenance = Provenance::new(&name, &exp_dirs);
    let mut figures: Vec<ReportFigure> = Vec::new();
    for p in &planned {
        let what = p.plot_type.as_str();
        let mut fig = ReportFigure {
            title: p.word.replace('_', " "),
            ..ReportFigure::default()
        };
        for f in &formats {
            let bytes = plot::output::render(&p.figure, *f, Some(&provenance))
                .with_context(|| format!("drawing the {what} plot"))?;
            let path = cli
                .plot_path
                .join(format!("{name}_{}.{}", p.word, f.extension()));
            pd_common::fsutil::write_replace(&path, &bytes)
                .with_context(|| format!("writing the {what} plot"))?;
            writeln!(out, "Saved {what} plot to: {}", path.display())?;
            if *f == Format::Svg && want_html {
                fig.svg = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            fig.files.push(path);
            if p.plot_type == PlotType::Comprehensive && !explicit {
                let alias =
                    outputs::write_alias(&cli.plot_path, f.extension(), &bytes, &provenance)
                        .with_context(|| format!("writing the {what} plot"))?;
                let alias_path =
                    cli.plot_path
                        .join(format!("{}.{}", outputs::ALIAS_STEM, f.extension()));
                match alias {
                    Replaced::Fresh => {}
                    Replaced::StillAt { previous, kept } => warn(
                        &mut warnings,
                        format!(
                            "{} now shows this comparison; the previous one ({previous}) is \
                             still in {}",
                            alias_path.display(),
                            kept.display()
                        ),
                    ),
                    Replaced::MovedTo { kept } => warn(
                        &mut warnings,
                        format!(
                            "{} showed another comparison; it was moved to {} and now shows \
                             this one",
                            alias_path.display(),
                            kept.display()
                        ),
                    ),
                }
                writeln!(out, "Saved {what} plot to: {}", alias_path.display())?;
            }
        }
        if want_html && fig.svg.is_none() {
            fig.svg = Some(
                plot::output::render_svg(&p.figure, None)
                    .with_context(|| format!("drawing the {what} plot"))?,
            );
        }
        figures.push(fig);
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
            significance: sig.as_ref(),
            figures: &figures,
            warnings: &warnings,
            command: &command,
            settings: &settings,
        };
        let paths = report::write(&input, &cli.report_dir, &cli.report_formats())
            .with_context(|| format!("writing the report into {}", cli.report_dir.display()))?;
        for p in paths {
            writeln!(out, "Wrote report: {}", p.display())?;
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "viz done"
    );
    Ok(())
}
