//! Comparison tables like the original's: rows = concurrency (or request rate),
//! columns = experiments. Rendered as aligned text, CSV (full precision) or Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pd_common::SweepKind;

use crate::error::{Result, VizError};
use crate::load::{Experiment, Point};
use crate::metrics;

/// The metrics of the original's tables, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMetric {
    MedianTpot,
    MedianTtft,
    OutputThroughput,
    RequestThroughput,
    OutputThroughputNorm,
    RequestThroughputNorm,
    InputThroughputNorm,
}

impl TableMetric {
    pub const ALL: [TableMetric; 7] = [
        TableMetric::MedianTpot,
        TableMetric::MedianTtft,
        TableMetric::OutputThroughput,
        TableMetric::RequestThroughput,
        TableMetric::OutputThroughputNorm,
        TableMetric::RequestThroughputNorm,
        TableMetric::InputThroughputNorm,
    ];

    /// Key (the result-file key, `_norm` for normalised ones); used in CSV file names.
    pub fn key(self) -> &'static str {
        match self {
            TableMetric::MedianTpot => "median_tpot_ms",
            TableMetric::MedianTtft => "median_ttft_ms",
            TableMetric::OutputThroughput => "output_throughput",
            TableMetric::RequestThroughput => "request_throughput",
            TableMetric::OutputThroughputNorm => "output_throughput_norm",
            TableMetric::RequestThroughputNorm => "request_throughput_norm",
            TableMetric::InputThroughputNorm => "input_throughput_norm",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            TableMetric::MedianTpot => "TPOT Median (ms)",
            TableMetric::MedianTtft => "TTFT Median (ms)",
            TableMetric::OutputThroughput => "Output Throughput (token/s)",
            TableMetric::RequestThroughput => "Request Throughput (req/s)",
            TableMetric::OutputThroughputNorm => "Output Throughput Normalized (token/s/node)",
            TableMetric::RequestThroughputNorm => "Request Throughput Normalized (req/s/node)",
            TableMetric::InputThroughputNorm => "Input Throughput Normalized (token/s/node)",
        }
    }

    pub fn is_normalized(self) -> bool {
        matches!(
            self,
            TableMetric::OutputThroughputNorm
                | TableMetric::RequestThroughputNorm
                | TableMetric::InputThroughputNorm
        )
    }

    /// Decimals in text tables.
    pub fn decimals(self) -> usize {
        match self {
            TableMetric::MedianTpot | TableMetric::MedianTtft => 2,
            TableMetric::RequestThroughput | TableMetric::RequestThroughputNorm => 3,
            _ => 1,
        }
    }

    /// The value of one point. Normalised metrics of an experiment whose GPU count is
    /// unknown are the raw values (the column is flagged).
    pub fn value(self, e: &Experiment, p: &Point, gpus_per_node: u32) -> Option<f64> {
        let norm = |v: f64| match e.total_gpus {
            Some(g) if g > 0 => metrics::normalize(v, gpus_per_node, g),
            _ => v,
        };
        let r = &p.result;
        let v = match self {
            TableMetric::MedianTpot => metrics::tpot(p),
            TableMetric::MedianTtft => metrics::ttft(p),
            TableMetric::OutputThroughput => Some(r.output_throughput),
            TableMetric::RequestThroughput => Some(r.request_throughput),
            TableMetric::OutputThroughputNorm => Some(norm(r.output_throughput)),
            TableMetric::RequestThroughputNorm => Some(norm(r.request_throughput)),
            TableMetric::InputThroughputNorm => metrics::input_throughput(p).map(norm),
        };
        v.filter(|x| x.is_finite())
    }
}

/// One row: a sweep point.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: SweepKind,
    pub value: f64,
    /// One cell per column (experiment); `None` = not measured.
    pub cells: Vec<Option<f64>>,
}

/// One comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub metric: TableMetric,
    pub title: String,
    /// `Concurrency`, `Request rate (req/s)` or `Sweep point` when both kinds appear.
    pub row_header: String,
    /// Experiment names.
    pub columns: Vec<String>,
    /// Columns shown unnormalised although the table is normalised (GPU count unknown).
    pub unnormalized: Vec<bool>,
    pub rows: Vec<Row>,
}

/// Label of a sweep value: `16`, `2.5`.
pub fn format_sweep_value(v: f64) -> String {
    pd_common::naming::format_rate(v)
}

impl Table {
    fn mixed(&self) -> bool {
        self.rows.iter().any(|r| r.kind == SweepKind::Concurrency)
            && self.rows.iter().any(|r| r.kind == SweepKind::RequestRate)
    }

    fn row_label(&self, r: &Row) -> String {
        let v = format_sweep_value(r.value);
        if self.mixed() {
            match r.kind {
                SweepKind::Concurrency => format!("conc {v}"),
                SweepKind::RequestRate => format!("rate {v}"),
            }
        } else {
            v
        }
    }

    fn header(&self, i: usize) -> String {
        if self.unnormalized.get(i).copied().unwrap_or(false) {
            format!("{}*", self.columns[i])
        } else {
            self.columns[i].clone()
        }
    }

    fn footnote(&self) -> Option<&'static str> {
        self.unnormalized
            .iter()
            .any(|u| *u)
            .then_some("* GPU count unknown: values not normalised")
    }

    fn cell(&self, v: Option<f64>) -> String {
        match v {
            Some(x) => format!("{:.*}", self.metric.decimals(), x),
            None => "-".to_string(),
        }
    }

    /// Aligned text. Columns that do not fit in `max_width` characters continue in
    /// further blocks (each repeating the row labels).
    pub fn render_text(&self, max_width: usize) -> String {
        let labels: Vec<String> = self.rows.iter().map(|r| self.row_label(r)).collect();
        let label_w = labels
            .iter()
            .map(|l| l.chars().count())
            .chain([self.row_header.chars().count()])
            .max()
            .unwrap_or(0);
        let cols: Vec<(String, Vec<String>)> = (0..self.columns.len())
            .map(|i| {
                (
                    self.header(i),
                    self.rows.iter().map(|r| self.cell(r.cells[i])).collect(),
                )
            })
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .map(|(h, cells)| {
                cells
                    .iter()
                    .map(|c| c.chars().count())
                    .chain([h.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // Split columns into blocks that fit.
        let mut blocks: Vec<Vec<usize>> = vec![Vec::new()];
        let mut used = label_w;
        for (i, w) in widths.iter().enumerate() {
            let need = 2 + w;
            let block = blocks.last_mut().expect("blocks is never empty");
            if !block.is_empty() && used + need > max_width {
                blocks.push(vec![i]);
                used = label_w + need;
            } else {
                block.push(i);
                used += need;
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "{}:", self.title);
        let rule = "-".repeat(max_width.min(80));
        let _ = writeln!(out, "{rule}");
        for (b, block) in blocks.iter().enumerate() {
            if b > 0 {
                out.push('\n');
            }
            let mut line = format!("{:<label_w$}", self.row_header);
            for &i in block {
                let _ = write!(line, "  {:>w$}", cols[i].0, w = widths[i]);
            }
            let _ = writeln!(out, "{}", line.trim_end());
            for (r, label) in labels.iter().enumerate() {
                let mut line = format!("{label:>label_w$}");
                for &i in block {
                    let _ = write!(line, "  {:>w$}", cols[i].1[r], w = widths[i]);
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        if let Some(f) = self.footnote() {
            let _ = writeln!(out, "{f}");
        }
        out
    }

    /// Markdown table (for reports).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "**{}**\n", self.title);
        let mut head = format!("| {} |", self.row_header);
        let mut sep = String::from("|---:|");
        for i in 0..self.columns.len() {
            let _ = write!(head, " {} |", self.header(i).replace('|', "\\|"));
            sep.push_str("---:|");
        }
        let _ = writeln!(out, "{head}\n{sep}");
        for r in &self.rows {
            let mut line = format!("| {} |", self.row_label(r));
            for c in &r.cells {
                let _ = write!(line, " {} |", self.cell(*c));
            }
            let _ = writeln!(out, "{line}");
        }
        if let Some(f) = self.footnote() {
            let _ = writeln!(out, "\n{f}");
        }
        out
    }

    /// CSV with full-precision values (empty cell = not measured).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let csv_err = |source| VizError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        let mixed = self.mixed();
        let mut head = Vec::new();
        if mixed {
            head.push("sweep".to_string());
        }
        head.push(match (mixed, self.rows.first().map(|r| r.kind)) {
            (false, Some(SweepKind::RequestRate)) => "request_rate".to_string(),
            (false, _) => "concurrency".to_string(),
            (true, _) => "value".to_string(),
        });
        head.extend(self.columns.iter().cloned());
        w.write_record(&head).map_err(csv_err)?;
        for r in &self.rows {
            let mut rec = Vec::new();
            if mixed {
                rec.push(r.kind.as_str().to_string());
            }
            rec.push(format_sweep_value(r.value));
            rec.extend(
                r.cells
                    .iter()
                    .map(|c| c.map(|v| v.to_string()).unwrap_or_default()),
            );
            w.write_record(&rec).map_err(csv_err)?;
        }
        pd_common::csvfile::write_atomic(path, w)?;
        Ok(())
    }
}

/// The seven tables of the original for these experiments.
pub fn build_tables(experiments: &[Experiment], gpus_per_node: u32) -> Vec<Table> {
    TableMetric::ALL
        .iter()
        .map(|m| build_table(experiments, *m, gpus_per_node))
        .collect()
}

/// One table.
pub fn build_table(experiments: &[Experiment], metric: TableMetric, gpus_per_node: u32) -> Table {
    let mut keys: Vec<(SweepKind, f64)> = experiments
        .iter()
        .flat_map(|e| e.points.iter().map(|p| (p.kind, p.value)))
        .collect();
    keys.sort_by(|a, b| {
        let ka = u8::from(a.0 == SweepKind::RequestRate);
        let kb = u8::from(b.0 == SweepKind::RequestRate);
        (ka, a.1)
            .partial_cmp(&(kb, b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    keys.dedup();
    let rows = keys
        .iter()
        .map(|&(kind, value)| Row {
            kind,
            value,
            cells: experiments
                .iter()
                .map(|e| {
                    e.points
                        .iter()
                        .find(|p| p.kind == kind && p.value == value)
                        .and_then(|p| metric.value(e, p, gpus_per_node))
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let has_conc = keys.iter().any(|k| k.0 == SweepKind::Concurrency);
    let has_rate = keys.iter().any(|k| k.0 == SweepKind::RequestRate);
    let row_header = match (has_conc, has_rate) {
        (true, true) => "Sweep point",
        (false, true) => "Request rate (req/s)",
        _ => "Concurrency",
    }
    .to_string();
    Table {
        metric,
        title: metric.title().to_string(),
        row_header,
        columns: experiments.iter().map(|e| e.name.clone()).collect(),
        unnormalized: experiments
            .iter()
            .map(|e| metric.is_normalized() && e.total_gpus.is_none())
            .collect(),
        rows,
    }
}

/// Text of all tables, grouped like the original (original metrics, then normalised).
pub fn render_all(tables: &[Table], gpus_per_node: u32, max_width: usize) -> String {
    let bar = "=".repeat(80);
    let mut out = String::new();
    let mut in_norm = None;
    for t in tables {
        let norm = t.metric.is_normalized();
        if in_norm != Some(norm) {
            let heading = if norm {
                format!("COMPARISON TABLES - NORMALIZED TO SINGLE NODE BASELINE ({gpus_per_node} GPUs/node)")
            } else {
                "COMPARISON TABLES - ORIGINAL METRICS".to_string()
            };
            let _ = writeln!(out, "\n{bar}\n{heading}\n{bar}");
            in_norm = Some(norm);
        }
        out.push('\n');
        out.push_str(&t.render_text(max_width));
    }
    out
}

/// Write every table as `<dir>/<name>_<metric-key>.csv` and the long table of all points
/// as `<dir>/<name>_points.csv` ([`write_points_csv`]); returns the paths.
pub fn write_all_csv(
    tables: &[Table],
    experiments: &[Experiment],
    gpus_per_node: u32,
    dir: &Path,
    name: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| VizError::io(dir, e))?;
    let mut paths = tables
        .iter()
        .map(|t| {
            let path = dir.join(format!("{name}_{}.csv", t.metric.key()));
            t.write_csv(&path).map(|()| path)
        })
        .collect::<Result<Vec<_>>>()?;
    let points = dir.join(format!("{name}_points.csv"));
    write_points_csv(experiments, gpus_per_node, &points)?;
    paths.push(points);
    Ok(paths)
}

/// Columns of the long table besides the metrics.
const POINT_COLUMNS: [&str; 10] = [
    "experiment",
    "directory",
    "file",
    "aggregated",
    "sweep",
    "value",
    "runs",
    "failed",
    "requests",
    "gpus",
];

/// One row per point (full precision): the experiment, its directory and the point's
/// file (`aggregated` = yes when viz averaged `P-<k>.json` runs itself), the sweep
/// coordinate, runs, failed/all requests, the GPU count (empty = unknown: the `_norm`
/// columns are then raw), the seven table metrics, and the 95 % CI bounds of the three
/// raw headline metrics (empty without repeats).
pub fn write_points_csv(experiments: &[Experiment], gpus_per_node: u32, path: &Path) -> Result<()> {
    let csv_err = |source| VizError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let ci_keys = ["median_tpot_ms", "median_ttft_ms", "output_throughput"];
    let mut head: Vec<String> = POINT_COLUMNS.iter().map(|c| c.to_string()).collect();
    head.extend(TableMetric::ALL.iter().map(|m| m.key().to_string()));
    for k in ci_keys {
        head.push(format!("{k}_ci95_lo"));
        head.push(format!("{k}_ci95_hi"));
    }
    w.write_record(&head).map_err(csv_err)?;
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for e in experiments {
        for p in &e.points {
            let mut rec = vec![
                e.name.clone(),
                e.dir.display().to_string(),
                p.file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                if p.file.exists() { "no" } else { "yes" }.to_string(),
                p.kind.as_str().to_string(),
                format_sweep_value(p.value),
                p.repeat_count().to_string(),
                p.failed.to_string(),
                p.requests.to_string(),
                e.total_gpus.map(|g| g.to_string()).unwrap_or_default(),
            ];
            rec.extend(
                TableMetric::ALL
                    .iter()
                    .map(|m| opt(m.value(e, p, gpus_per_node))),
            );
            let fs: [fn(&pd_common::BenchResult) -> Option<f64>; 3] =
                [metrics::tpot_of, metrics::ttft_of, |r| {
                    Some(r.output_throughput)
                }];
            for (k, f) in ci_keys.iter().zip(fs) {
                let ci = metrics::ci(p, f, Some(k));
                rec.push(opt(ci.map(|c| c.0)));
                rec.push(opt(ci.map(|c| c.1)));
            }
            w.write_record(&rec).map_err(csv_err)?;
        }
    }
    pd_common::csvfile::write_atomic(path, w)?;
    Ok(())
}
