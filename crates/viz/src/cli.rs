//! Command line of `viz` (compatible with the original viz.py's flags).

use std::path::PathBuf;

use clap::{ArgGroup, Parser};
use clap_verbosity_flag::{Verbosity, WarnLevel};

use crate::plot::{Format, PlotType};
use crate::settings::{LatencyMode, Settings, ThroughputMetric};
use crate::sla::Slo;

const AFTER_HELP: &str = "\
Output files (NAME: --name, else the single directory's name, else one derived from the
compared directories, e.g. baseline_4xtp2_vs_pd_p1xtp2-d2xtp2):
  Plots go to <PLOT_PATH>/<NAME>_<TYPE>.png and .svg; the comprehensive type is written as
  <NAME>_comprehensive_analysis.png and, without --name, also as the original viz.py's
  <PLOT_PATH>/comprehensive_analysis.png (the latest comparison in that folder). A plot of a
  different comparison is never replaced silently: a derived NAME that would overwrite
  another comparison's plots gets a suffix, and a replaced comprehensive_analysis.png is
  kept under its own name (with a warning). CSV tables (--csv DIR) go to
  DIR/<NAME>_<metric>.csv, the report (--report) to <REPORT_DIR>/<NAME>.md and .html.

Input:
  Each directory holds one JSON file per sweep point (conc<N>.json, rr<R>.json), written
  by run-bm or by `vllm bench serve --save-result`; repeated runs P-<k>.json (with or
  without their aggregate P.json) become one point with a 95 % confidence interval, and
  P.metrics.csv (server metrics) feeds --plot-type server-metrics. Unreadable files,
  points with negative or NaN metrics, and missing or empty directories are reported as
  warnings and skipped; points with failed requests are plotted with a warning. viz fails
  (exit 1) only when nothing is usable; bad flags exit 2.
  Throughput is normalised to one node: value x GPUS_PER_NODE / GPUs of the deployment,
  with the GPU count taken from the result files (pd_lab.total_gpus), the manifest, or
  the directory name (4xtp2, p1xtp2-d2xtp2); a directory of unknown GPU count is shown
  unnormalised with a warning.

Examples:
  # Analyze a single experiment
  viz --result-dir bm_results/gptoss_itl5000_otl250_mixed_baseline_4xtp2

  # Compare experiments (--exps is the original viz.py's spelling)
  viz --compare-dirs bm_results/exp1 bm_results/exp2 bm_results/exp3

  # Specific plot types, SVG only, chunk latency on the throughput panel
  viz --result-dir bm_results/exp1 --plot-type throughput-vs-tpot,pareto --format svg
  viz --exps bm_results/* --latency-mode chunk --chunk-size 32

  # Best configuration under a latency SLA, tables as CSV, and a findings report
  viz --compare-dirs bm_results/* --slo-tpot 20 --slo-ttft 1000 --csv out/ --report";

/// Plots, tables and SLA picks from result directories.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "viz",
    version,
    about = "Plots, comparison tables and SLA picks from benchmark result directories",
    after_help = AFTER_HELP,
    infer_long_args = true,
    group(ArgGroup::new("input").required(true).multiple(true).args(["result_dir", "compare_dirs", "probe"]))
)]
pub struct Cli {
    /// Result directory of one experiment.
    #[arg(long, value_name = "DIR")]
    pub result_dir: Option<PathBuf>,

    /// Result directories to compare.
    #[arg(long, visible_alias = "exps", value_name = "DIR", num_args = 1..)]
    pub compare_dirs: Vec<PathBuf>,

    /// NIXL transfer probe result file(s) of `launch-gptoss probe`: a table and a
    /// bandwidth/latency figure (<PLOT_PATH>/<NAME>_nixl_probe.png/.svg).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub probe: Vec<PathBuf>,

    /// Plot type(s), comma-separated or repeated; `all` for every type.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "comprehensive"
    )]
    pub plot_type: Vec<PlotType>,

    /// Plot file format(s), comma-separated or repeated [default: png,svg].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<Format>,

    /// Folder where plots are saved.
    #[arg(long, value_name = "DIR", default_value = "plots")]
    pub plot_path: PathBuf,

    /// Name used in output file names [default: the directory name, or one derived from
    /// the compared directories].
    #[arg(long)]
    pub name: Option<String>,

    /// Show comparison tables [default: on; --no-show-tables to disable].
    #[arg(long, overrides_with = "no_show_tables")]
    pub show_tables: bool,
    #[arg(long, overrides_with = "show_tables", hide = true)]
    pub no_show_tables: bool,

    /// Create plots [default: on; --no-plot to disable].
    #[arg(long, overrides_with = "no_plot")]
    pub plot: bool,
    #[arg(long, overrides_with = "plot", hide = true)]
    pub no_plot: bool,

    /// Normalise throughput to one node (value x GPUs per node / GPUs) in plots and SLA
    /// picks [default: on; --no-use-normalized to disable].
    #[arg(long, overrides_with = "no_use_normalized")]
    pub use_normalized: bool,
    #[arg(long, overrides_with = "use_normalized", hide = true)]
    pub no_use_normalized: bool,

    /// Latency on the x axis of the comprehensive throughput panel: chunk
    /// ((chunk_size-1) x TPOT + TTFT), first_token (TTFT) or token (TPOT).
    #[arg(long, value_enum, default_value = "token")]
    pub latency_mode: LatencyMode,

    /// Chunk size of the chunk latency mode.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,

    /// Log scale on the latency/interactivity axis of throughput plots
    /// [default: on; --no-log-latency to disable].
    #[arg(long, overrides_with = "no_log_latency")]
    pub log_latency: bool,
    #[arg(long, overrides_with = "log_latency", hide = true)]
    pub no_log_latency: bool,

    /// Log scale on the latency axis of latency-vs-concurrency plots
    /// [default: on; --no-log-concurrency to disable].
    #[arg(long, overrides_with = "no_log_concurrency")]
    pub log_concurrency: bool,
    #[arg(long, overrides_with = "log_concurrency", hide = true)]
    pub no_log_concurrency: bool,

    /// Interactivity (1000 / TPOT, token/s/user) instead of latency on the comprehensive
    /// throughput panel [default: off].
    #[arg(long, overrides_with = "no_use_interactivity")]
    pub use_interactivity: bool,
    #[arg(long, overrides_with = "use_interactivity", hide = true)]
    pub no_use_interactivity: bool,

    /// Throughput plotted and compared: input (prefill), output (decode) or total.
    #[arg(long, value_enum, default_value = "output")]
    pub throughput_metric: ThroughputMetric,

    /// GPUs per node (normalisation baseline).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub gpus_per_node: u32,

    /// Also write every table as CSV into DIR.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,

    /// TPOT objective (ms) for the "best under SLA" table.
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    pub slo_tpot: Option<f64>,

    /// TTFT objective (ms) for the "best under SLA" table.
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    pub slo_ttft: Option<f64>,

    /// Write a findings report (plots, tables, SLA picks, significance of differences,
    /// reproducibility checklist) to <REPORT_DIR>/<NAME>.md and a self-contained
    /// <REPORT_DIR>/<NAME>.html.
    #[arg(long)]
    pub report: bool,

    /// Report format(s), comma-separated [default: md,html].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub report_format: Vec<ReportFormat>,

    /// Folder of --report.
    #[arg(long, value_name = "DIR", default_value = "results/findings")]
    pub report_dir: PathBuf,

    /// Maximum width of text tables; wider tables continue in blocks
    /// [default: $COLUMNS, else 160].
    #[arg(long, value_name = "CHARS", value_parser = clap::value_parser!(u16).range(40..))]
    pub table_width: Option<u16>,

    #[command(flatten)]
    pub verbosity: Verbosity<WarnLevel>,
}

/// Formats of `--report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Markdown (plots linked as files).
    Md,
    /// One self-contained HTML file (plots inlined as SVG).
    Html,
}

fn positive_ms(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err(format!("'{s}': must be a positive number of milliseconds")),
        Err(_) => Err(format!("'{s}' is not a number (milliseconds, e.g. 20)")),
    }
}

impl Cli {
    /// All directories, in the order given.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.result_dir
            .iter()
            .chain(self.compare_dirs.iter())
            .cloned()
            .collect()
    }

    pub fn settings(&self) -> Settings {
        Settings {
            use_normalized: !self.no_use_normalized,
            latency_mode: self.latency_mode,
            chunk_size: self.chunk_size,
            log_latency: !self.no_log_latency,
            log_concurrency: !self.no_log_concurrency,
            use_interactivity: self.use_interactivity,
            throughput_metric: self.throughput_metric,
            gpus_per_node: self.gpus_per_node,
        }
    }

    pub fn show_tables(&self) -> bool {
        !self.no_show_tables
    }

    pub fn make_plots(&self) -> bool {
        !self.no_plot
    }

    pub fn formats(&self) -> Vec<Format> {
        let mut f = if self.format.is_empty() {
            vec![Format::Png, Format::Svg]
        } else {
            self.format.clone()
        };
        f.dedup();
        f
    }

    /// Report formats (`md,html` unless given).
    pub fn report_formats(&self) -> Vec<ReportFormat> {
        let mut f = if self.report_format.is_empty() {
            vec![ReportFormat::Md, ReportFormat::Html]
        } else {
            self.report_format.clone()
        };
        f.dedup();
        f
    }

    pub fn slo(&self) -> Slo {
        Slo {
            tpot_ms: self.slo_tpot,
            ttft_ms: self.slo_ttft,
        }
    }

    pub fn table_width(&self) -> usize {
        self.table_width.map(usize::from).unwrap_or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse::<usize>().ok())
                .filter(|c| *c >= 40)
                .unwrap_or(160)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("viz").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_match_the_original() {
        let c = parse(&["--exps", "a", "b"]);
        assert_eq!(c.dirs(), vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(c.settings(), Settings::default());
        assert!(c.show_tables() && c.make_plots());
        assert_eq!(c.formats(), vec![Format::Png, Format::Svg]);
        assert_eq!(c.plot_type, vec![PlotType::Comprehensive]);
        assert_eq!(c.plot_path, PathBuf::from("plots"));
    }

    #[test]
    fn flag_pairs_last_one_wins() {
        let c = parse(&[
            "--result-dir",
            "a",
            "--no-plot",
            "--no-show-tables",
            "--no-use-normalized",
        ]);
        assert!(!c.make_plots() && !c.show_tables() && !c.settings().use_normalized);
        let c = parse(&[
            "--result-dir",
            "a",
            "--no-plot",
            "--plot",
            "--use-interactivity",
        ]);
        assert!(c.make_plots() && c.settings().use_interactivity);
        let c = parse(&[
            "--result-dir",
            "a",
            "--use-interactivity",
            "--no-use-interactivity",
        ]);
        assert!(!c.settings().use_interactivity);
        let c = parse(&[
            "--result-dir",
            "a",
            "--no-log-latency",
            "--no-log-concurrency",
        ]);
        assert!(!c.settings().log_latency && !c.settings().log_concurrency);
    }

    #[test]
    fn unambiguous_prefixes_and_verbosity() {
        let c = parse(&[
            "--exp",
            "a",
            "b",
            "--plot-t",
            "pareto",
            "--through",
            "total",
        ]);
        assert_eq!(c.dirs().len(), 2);
        assert_eq!(c.plot_type, vec![PlotType::Pareto]);
        assert_eq!(c.throughput_metric, ThroughputMetric::Total);
        // `--plo` could be --plot, --plot-type or --plot-path.
        assert!(Cli::try_parse_from(["viz", "--exps", "a", "--plo"]).is_err());
        use pd_common::diag::LevelFilter;
        assert_eq!(c.verbosity.tracing_level_filter(), LevelFilter::WARN);
        let c = parse(&["--exps", "a", "-q"]);
        assert_eq!(c.verbosity.tracing_level_filter(), LevelFilter::ERROR);
        let c = parse(&["--exps", "a", "-vv"]);
        assert_eq!(c.verbosity.tracing_level_filter(), LevelFilter::DEBUG);
        assert_eq!(
            c.report_formats(),
            vec![ReportFormat::Md, ReportFormat::Html]
        );
    }

    #[test]
    fn values() {
        let c = parse(&[
            "--result-dir",
            "a",
            "--latency-mode",
            "first_token",
            "--plot-type",
            "pareto,tpot-vs-concurrency",
            "--format",
            "svg",
            "--slo-tpot",
            "20",
        ]);
        assert_eq!(c.latency_mode, LatencyMode::FirstToken);
        assert_eq!(
            c.plot_type,
            vec![PlotType::Pareto, PlotType::TpotVsConcurrency]
        );
        assert_eq!(c.formats(), vec![Format::Svg]);
        assert_eq!(c.slo().tpot_ms, Some(20.0));
        for bad in [
            vec!["--plot-type", "x"],
            vec!["--result-dir", "a", "--slo-tpot", "-1"],
            vec!["--result-dir", "a", "--chunk-size", "0"],
            vec![],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("viz").chain(bad.iter().copied())).is_err()
            );
        }
    }
}
