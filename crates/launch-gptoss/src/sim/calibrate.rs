//! `launch-gptoss sim-calibrate`: run the engine in virtual time for every real result
//! directory (same deployment, same `vllm bench serve` sweep) and compare.
//!
//! For each directory of `--real-dir`: the name gives the deployment
//! (`pd_common::label::parse_label`: layout, `H200` tag, pack/spread, `tcp`/`srd`/`ib`
//! network tags); one fresh simulated deployment runs the concurrency points found in the
//! directory in ascending order (as `run_bm.sh` did), each with the untimed test prompt
//! first and 5×C prompts. Simulated results go to `--out/<same dir name>/conc<C>.json`
//! (vLLM-compatible `BenchResult`, `pd_lab.serving_backend = sim`), and a table of
//! median TTFT, median TPOT and output throughput (real vs sim, % error) is printed and,
//! with `--markdown`, written as Markdown.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pd_common::deployment::{DeployMode, DeploymentSpec, GpuKind, ServingBackend};
use pd_common::label::{parse_label, ParsedLabel};
use pd_common::naming::{parse_point_file_name, point_file_name};
use pd_common::result::{BenchResult, PdLabExtra, RequestRate};
use pd_common::workload::{BenchMode, SweepKind, Workload};

use super::engine::{ClusterConfig, Engine, NetworkKind, SimConstants};
use super::vclient::{Arrivals, BenchMetrics, RunOutcome, RunSpec, VirtualClient};
use crate::cli::SimCalibrateArgs;

/// vLLM's `max_model_len` in the measured deployments.
pub const MAX_MODEL_LEN: u32 = 16000;

/// The deployment a real directory name describes.
#[derive(Debug, Clone)]
pub struct DirConfig {
    pub name: String,
    pub label: ParsedLabel,
    pub cluster: ClusterConfig,
}

/// Network of a pd-spread deployment from the name's tags: `tcp` → TCP, `srd`/`efa` →
/// EFA-SRD, `ib` → InfiniBand; untagged: EFA-SRD on H100 (p5), InfiniBand on H200.
pub fn network_from_tags(tags: &[String], gpu: GpuKind) -> NetworkKind {
    let has = |t: &str| tags.iter().any(|x| x == t);
    if has("tcp") {
        NetworkKind::Tcp
    } else if has("srd") || has("efa") {
        NetworkKind::EfaSrd
    } else if has("ib") || gpu == GpuKind::H200 {
        NetworkKind::Ib
    } else {
        NetworkKind::EfaSrd
    }
}

/// Map a real result directory name to a cluster configuration.
pub fn dir_config(
    name: &str,
    override_consts: Option<&SimConstants>,
    seed: u64,
) -> Result<DirConfig> {
    let label = parse_label(name).with_context(|| format!("directory '{name}'"))?;
    let gpu = label.gpu.unwrap_or(GpuKind::H100);
    let mut spec = match (label.mode, label.collocated, label.prefill, label.decode) {
        (DeployMode::Collocated, Some(c), _, _) => DeploymentSpec::collocated(c.num, c.tp),
        (mode, _, Some(p), Some(d)) => DeploymentSpec::pd(mode, p, d),
        _ => bail!("directory '{name}': incomplete layout"),
    };
    spec.gpu = gpu;
    let constants = match override_consts {
        Some(c) if c.gpu.eq_ignore_ascii_case(gpu.as_str()) => c.clone(),
        _ => SimConstants::builtin(gpu)?,
    };
    let network = network_from_tags(&label.network, gpu);
    Ok(DirConfig {
        name: name.to_string(),
        cluster: ClusterConfig {
            spec,
            gpus_per_node: 8,
            network,
            constants,
            max_model_len: MAX_MODEL_LEN,
            seed,
        },
        label,
    })
}

/// One real sweep point.
#[derive(Debug, Clone)]
pub struct RealPoint {
    pub concurrency: u32,
    pub result: BenchResult,
}

/// Read the `conc<C>.json` points of a real directory, ascending C.
pub fn read_real_points(dir: &Path) -> Result<Vec<RealPoint>> {
    let mut points = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let fname = entry.file_name().to_string_lossy().to_string();
        if let Some((SweepKind::Concurrency, c)) = parse_point_file_name(&fname) {
            let result = BenchResult::read(&entry.path())?;
            points.push(RealPoint {
                concurrency: c as u32,
                result,
            });
        }
    }
    points.sort_by_key(|p| p.concurrency);
    Ok(points)
}

/// Simulate one deployment's sweep: a fresh engine, concurrency points in ascending order,
/// each with the test prompt first.
pub fn simulate_sweep(
    cluster: &ClusterConfig,
    points: &[(u32, u32)],
    input_len: u32,
    output_len: u32,
) -> Result<Vec<RunOutcome>> {
    let mut engine = Engine::new(cluster.clone())?;
    let mut client = VirtualClient::new(&mut engine, 1);
    let mut outs = Vec::new();
    for &(c, n) in points {
        let spec = RunSpec {
            arrivals: Arrivals::ClosedLoop { concurrency: c },
            num_prompts: n,
            input_len,
            output_len,
            warmup: true,
        };
        let out = client
            .run(&spec)
            .with_context(|| format!("engine stalled at concurrency {c} (simulator bug)"))?;
        outs.push(out);
    }
    Ok(outs)
}

/// Build a vLLM-compatible result file for a simulated point.
pub fn bench_result(
    out: &RunOutcome,
    concurrency: u32,
    cluster: &ClusterConfig,
    workload: Workload,
    model_id: &str,
) -> BenchResult {
    let m: BenchMetrics = out.metrics();
    let ok: Vec<_> = out.records.iter().filter(|r| r.success).collect();
    let mut r = BenchResult {
        date: chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string(),
        endpoint_type: "vllm".to_string(),
        backend: "vllm".to_string(),
        label: None,
        model_id: model_id.to_string(),
        tokenizer_id: Some(model_id.to_string()),
        num_prompts: out.records.len() as u64,
        request_rate: RequestRate::Inf,
        burstiness: 1.0,
        max_concurrency: Some(u64::from(concurrency)),
        duration: m.duration,
        completed: m.completed,
        failed: Some(m.failed),
        total_input_tokens: m.total_input,
        total_output_tokens: m.total_output,
        request_throughput: m.request_throughput,
        request_goodput: None,
        output_throughput: m.output_throughput,
        total_token_throughput: m.total_token_throughput,
        input_lens: Some(ok.iter().map(|r| u64::from(r.prompt_tokens)).collect()),
        output_lens: Some(ok.iter().map(|r| u64::from(r.output_tokens)).collect()),
        ttfts: Some(ok.iter().map(|r| r.ttft).collect()),
        itls: Some(ok.iter().map(|r| r.itls.clone()).collect()),
        latencies: None,
        start_times: None,
        queue_times: None,
        generated_texts: None,
        errors: Some(out.records.iter().map(|r| r.error.clone()).collect()),
        max_output_tokens_per_s: None,
        max_concurrent_requests: Some(u64::from(out.max_in_flight)),
        interrupted: false,
        pd_lab: Some(PdLabExtra {
            tool: "launch-gptoss sim-calibrate".to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            serving_backend: Some(ServingBackend::Sim),
            deployment_label: Some(cluster.spec.label()),
            deploy_mode: Some(cluster.spec.mode),
            total_gpus: Some(cluster.spec.total_gpus()),
            gpus_per_node: Some(cluster.gpus_per_node),
            workload: Some(workload),
            sweep: Some(SweepKind::Concurrency),
            sweep_value: Some(f64::from(concurrency)),
            other: Default::default(),
        }),
        rest: Default::default(),
    };
    for (name, s) in [("ttft", m.ttft), ("tpot", m.tpot), ("itl", m.itl)] {
        r.set_stat(format!("mean_{name}_ms"), s.mean);
        r.set_stat(format!("median_{name}_ms"), s.median);
        r.set_stat(format!("std_{name}_ms"), s.std);
        r.set_stat(format!("p99_{name}_ms"), s.p99);
    }
    r
}

/// One compared point.
#[derive(Debug, Clone)]
pub struct Row {
    pub dir: String,
    pub concurrency: u32,
    pub real: [f64; 3],
    pub sim: [f64; 3],
    /// Counted in the summary (false for a byte-identical duplicate directory).
    pub counted: bool,
}

impl Row {
    pub fn err(&self, i: usize) -> f64 {
        (self.sim[i] - self.real[i]) / self.real[i] * 100.0
    }
}

pub const METRICS: [&str; 3] = [
    "median TTFT (ms)",
    "median TPOT (ms)",
    "output throughput (tok/s)",
];
/// Targets of issue 5 (median absolute % error).
pub const TARGETS: [f64; 3] = [15.0, 10.0, 8.0];

/// Median absolute % error per metric over the counted rows.
pub fn median_abs_errors(rows: &[Row]) -> [f64; 3] {
    let mut out = [0.0; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|r| r.counted)
            .map(|r| r.err(i).abs())
            .collect();
        v.sort_by(f64::total_cmp);
        *o = pd_common::result::percentile_sorted(&v, 50.0);
    }
    out
}

/// Calibrate: simulate every directory, write results, return the compared rows.
pub fn calibrate(args: &SimCalibrateArgs) -> Result<(Vec<Row>, Vec<String>)> {
    let override_consts = match &args.sim_config {
        Some(p) => Some(SimConstants::load(p)?),
        None => None,
    };
    let mut names: Vec<String> = std::fs::read_dir(&args.real_dir)
        .with_context(|| format!("reading real results directory {}", args.real_dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no result directories in {}", args.real_dir.display());
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut seen: HashMap<Vec<u8>, String> = HashMap::new();
    if let Some(c) = &override_consts {
        notes.push(format!(
            "--sim-config ({} constants) applied to the {} directories; built-in constants for the others",
            c.gpu, c.gpu
        ));
    }
    for name in &names {
        let dir = args.real_dir.join(name);
        let cfg = match dir_config(name, override_consts.as_ref(), args.seed) {
            Ok(c) => c,
            Err(e) => {
                notes.push(format!("skipped {name}: {e:#}"));
                continue;
            }
        };
        let points = read_real_points(&dir)?;
        if points.is_empty() {
            notes.push(format!("skipped {name}: no conc<C>.json files"));
            continue;
        }
        // byte-identical duplicates are counted once
        let mut fingerprint = Vec::new();
        for p in &points {
            let path = dir.join(point_file_name(
                SweepKind::Concurrency,
                f64::from(p.concurrency),
            ));
            fingerprint.extend(std::fs::read(&path).unwrap_or_default());
        }
        let duplicate_of = seen.get(&fingerprint).cloned();
        if let Some(orig) = &duplicate_of {
            notes.push(format!(
                "{name} is byte-identical to {orig}: shown, counted once"
            ));
        } else {
            seen.insert(fingerprint, name.clone());
        }
        let first = &points[0].result;
        let input_len = (first.total_input_tokens / first.completed.max(1)) as u32;
        let output_len = (first.total_output_tokens / first.completed.max(1)) as u32;
        let sweep: Vec<(u32, u32)> = points
            .iter()
            .map(|p| (p.concurrency, p.result.num_prompts as u32))
            .collect();
        let outs = simulate_sweep(&cfg.cluster, &sweep, input_len, output_len)
            .with_context(|| format!("simulating {name}"))?;
        let workload = Workload {
            itl: input_len,
            otl: output_len,
            mode: BenchMode::Mixed,
        };
        let out_dir = args.out.join(name);
        for (p, out) in points.iter().zip(&outs) {
            let sim = bench_result(out, p.concurrency, &cfg.cluster, workload, &first.model_id);
            let path = out_dir.join(point_file_name(
                SweepKind::Concurrency,
                f64::from(p.concurrency),
            ));
            sim.write(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            let real = &p.result;
            rows.push(Row {
                dir: name.clone(),
                concurrency: p.concurrency,
                real: [
                    real.median_ttft_ms().unwrap_or(f64::NAN),
                    real.median_tpot_ms().unwrap_or(f64::NAN),
                    real.output_throughput,
                ],
                sim: [
                    sim.median_ttft_ms().unwrap_or(f64::NAN),
                    sim.median_tpot_ms().unwrap_or(f64::NAN),
                    sim.output_throughput,
                ],
                counted: duplicate_of.is_none(),
            });
        }
    }
    Ok((rows, notes))
}

/// Render the comparison as Markdown.
pub fn render_markdown(rows: &[Row], notes: &[String], args_line: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Simulator calibration: real vs simulated\n");
    let _ = writeln!(
        s,
        "Generated by `{args_line}` (virtual time, seed in the command)."
    );
    let _ = writeln!(s, "Error = (sim − real) / real.\n");
    let med = median_abs_errors(rows);
    let _ = writeln!(
        s,
        "## Summary (median absolute error over all points, duplicates once)\n"
    );
    let _ = writeln!(s, "| metric | median abs error | target | points |");
    let _ = writeln!(s, "|---|---|---|---|");
    let n = rows.iter().filter(|r| r.counted).count();
    for i in 0..3 {
        let ok = if med[i] <= TARGETS[i] {
            "met"
        } else {
            "MISSED"
        };
        let _ = writeln!(
            s,
            "| {} | {:.1}% | ≤ {:.0}% ({ok}) | {n} |",
            METRICS[i], med[i], TARGETS[i]
        );
    }
    let _ = writeln!(s, "\n## Mean absolute error per configuration\n");
    let _ = writeln!(s, "| directory | TTFT | TPOT | throughput |");
    let _ = writeln!(s, "|---|---|---|---|");
    let mut dirs: Vec<&str> = rows.iter().map(|r| r.dir.as_str()).collect();
    dirs.dedup();
    for d in dirs {
        let sel: Vec<&Row> = rows.iter().filter(|r| r.dir == d).collect();
        let mean = |i: usize| sel.iter().map(|r| r.err(i).abs()).sum::<f64>() / sel.len() as f64;
        let dup = if sel.iter().all(|r| r.counted) {
            ""
        } else {
            " (duplicate)"
        };
        let _ = writeln!(
            s,
            "| {d}{dup} | {:.1}% | {:.1}% | {:.1}% |",
            mean(0),
            mean(1),
            mean(2)
        );
    }
    let _ = writeln!(s);
    let mut current = "";
    for r in rows {
        if r.dir != current {
            current = &r.dir;
            let _ = writeln!(
                s,
                "\n## {}{}\n",
                r.dir,
                if r.counted {
                    ""
                } else {
                    " (duplicate, not counted)"
                }
            );
            let _ = writeln!(
                s,
                "| C | TTFT real | TTFT sim | err | TPOT real | TPOT sim | err | thr real | thr sim | err |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        }
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:+.1}% | {:.2} | {:.2} | {:+.1}% | {:.1} | {:.1} | {:+.1}% |",
            r.concurrency,
            r.real[0],
            r.sim[0],
            r.err(0),
            r.real[1],
            r.sim[1],
            r.err(1),
            r.real[2],
            r.sim[2],
            r.err(2)
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(s, "* {n}");
        }
    }
    s
}

/// Render the comparison as a plain-text table for the terminal.
pub fn render_text(rows: &[Row], notes: &[String]) -> String {
    let mut s = String::new();
    let mut current = "";
    for r in rows {
        if r.dir != current {
            current = &r.dir;
            let _ = writeln!(
                s,
                "\n{}{}",
                r.dir,
                if r.counted {
                    ""
                } else {
                    "  (duplicate, not counted)"
                }
            );
            let _ = writeln!(
                s,
                "  {:>3}  {:>9} {:>9} {:>7}  {:>7} {:>7} {:>7}  {:>8} {:>8} {:>7}",
                "C", "TTFT", "sim", "err", "TPOT", "sim", "err", "thr", "sim", "err"
            );
        }
        let _ = writeln!(
            s,
            "  {:>3}  {:>9.1} {:>9.1} {:>+6.1}%  {:>7.2} {:>7.2} {:>+6.1}%  {:>8.1} {:>8.1} {:>+6.1}%",
            r.concurrency, r.real[0], r.sim[0], r.err(0), r.real[1], r.sim[1], r.err(1), r.real[2], r.sim[2], r.err(2)
        );
    }
    let med = median_abs_errors(rows);
    let n = rows.iter().filter(|r| r.counted).count();
    let _ = writeln!(
        s,
        "\nmedian absolute error over {n} points (duplicates once):"
    );
    for i in 0..3 {
        let ok = if med[i] <= TARGETS[i] {
            "met"
        } else {
            "MISSED"
        };
        let _ = writeln!(
            s,
            "  {:<28} {:>5.1}%  (target ≤ {:.0}%: {ok})",
            METRICS[i], med[i], TARGETS[i]
        );
    }
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

pub fn main(args: &SimCalibrateArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    let (rows, notes) = calibrate(args)?;
    print!("{}", render_text(&rows, &notes));
    println!(
        "simulated results written under {} ({} points, {:.2} s)",
        args.out.display(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(md) = &args.markdown {
        let mut line = String::from("launch-gptoss sim-calibrate");
        let _ = write!(
            line,
            " --real-dir {} --seed {}",
            args.real_dir.display(),
            args.seed
        );
        if let Some(c) = &args.sim_config {
            let _ = write!(line, " --sim-config {}", c.display());
        }
        let _ = write!(line, " --markdown {}", md.display());
        let text = render_markdown(&rows, &notes, &line);
        write_file(md, &text)?;
        println!("markdown table written to {}", md.display());
    }
    Ok(0)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
