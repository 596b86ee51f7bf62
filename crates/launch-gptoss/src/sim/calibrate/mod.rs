//! `launch-gptoss sim-calibrate`: the simulator against real `vllm bench serve` results, in
//! virtual time.
//!
//! * [`data`]: every result directory under the `--real-dir` roots, its deployment, workload
//!   and points (byte-identical directories counted once).
//! * [`run`]: one fresh simulated deployment per directory runs its points in the study's
//!   order, with vllm bench's test prompt first; a deployment vLLM would refuse is a row
//!   with vLLM's reason, never an abort.
//! * [`report`]: coverage, median errors overall and per category, Spearman rank agreement,
//!   text and Markdown.
//! * [`fit`]: fitting the few free constants and the leave-one-configuration-out protocol.

pub mod data;
pub mod fit;
pub mod report;
pub mod run;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pd_common::naming::point_file_name;

use crate::cli::SimCalibrateArgs;
use crate::sim::engine::SimConstants;
use crate::sim::parallel;
use data::RealSet;
use report::{Row, Summary};
use run::{ConfigRun, ConstSet, SimPoint};

/// The constants of a run: built-in, replaced per GPU kind by `--sim-config` files.
pub fn constants(files: &[PathBuf]) -> Result<ConstSet> {
    let mut set = ConstSet::builtin()?;
    for f in files {
        let c = SimConstants::load(f)?;
        set.apply(c)
            .with_context(|| format!("--sim-config {}", f.display()))?;
    }
    Ok(set)
}

/// Load the real results of the roots; a missing root is an error naming it.
pub fn load_real(roots: &[PathBuf]) -> Result<RealSet> {
    for r in roots {
        if !r.is_dir() {
            bail!(
                "real results directory {} not found (run from the repository root, where \
                 bm_results/reference is, or pass --real-dir)",
                r.display()
            );
        }
    }
    let set = data::load(roots)?;
    if set.configs.is_empty() {
        bail!(
            "no usable result directories under {}",
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(set)
}

/// Simulate every configuration (in parallel) with `consts`.
pub fn simulate_all(
    set: &RealSet,
    consts: &ConstSet,
    seed: u64,
    files: bool,
    jobs: usize,
) -> Vec<ConfigRun> {
    parallel::map(
        &set.configs,
        jobs,
        |c| run::simulate(c, consts, seed, files),
        || {},
    )
}

/// Everything `sim-calibrate` computes.
pub struct Calibration {
    pub set: RealSet,
    pub runs: Vec<ConfigRun>,
    pub rows: Vec<Row>,
    pub summary: Summary,
}

/// Load, simulate, compare.
pub fn calibrate(args: &SimCalibrateArgs) -> Result<Calibration> {
    let consts = constants(&args.sim_config)?;
    let set = load_real(&args.real_dir)?;
    let jobs = parallel::workers(args.jobs);
    let runs = simulate_all(&set, &consts, args.seed, true, jobs);
    let rows = report::rows(&set, &runs);
    let summary = report::summarize(&rows);
    Ok(Calibration {
        set,
        runs,
        rows,
        summary,
    })
}

/// Write the simulated result files under `out/<directory name>/`.
pub fn write_results(cal: &Calibration, out: &Path) -> Result<usize> {
    let mut n = 0;
    for (cfg, run) in cal.set.configs.iter().zip(&cal.runs) {
        let ConfigRun::Points(points) = run else {
            continue;
        };
        for (p, sp) in cfg.points.iter().zip(points) {
            if let SimPoint::Done {
                file: Some(file), ..
            } = sp
            {
                let name = if pd_common::naming::parse_point_name(&p.file_name).is_some() {
                    p.file_name.clone()
                } else {
                    point_file_name(p.kind, p.value)
                };
                let path = out.join(&cfg.name).join(name);
                file.write(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The command line that reproduces a run, for the Markdown header.
pub fn command_line(args: &SimCalibrateArgs) -> String {
    let mut line = String::from("launch-gptoss sim-calibrate");
    for d in &args.real_dir {
        let _ = write!(line, " --real-dir {}", d.display());
    }
    let _ = write!(line, " --seed {}", args.seed);
    for c in &args.sim_config {
        let _ = write!(line, " --sim-config {}", c.display());
    }
    if args.loco {
        line.push_str(" --loco");
    }
    if let Some(n) = args.folds {
        let _ = write!(line, " --folds {n}");
    }
    if let Some(md) = &args.markdown {
        let _ = write!(line, " --markdown {}", md.display());
    }
    line
}

fn render_markdown(cal: &Calibration, loco: Option<&fit::LocoReport>, line: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Simulator calibration: real vs simulated\n");
    let _ = writeln!(
        s,
        "Generated by `{line}` (virtual time). Error = (sim − real) / real; TPOT is not \
         compared for one-token outputs (vLLM reports 0).\n"
    );
    let _ = writeln!(s, "## In-sample (the shipped constants)\n");
    s.push_str(&report::summary_markdown(&cal.summary));
    if let Some(l) = loco {
        let _ = writeln!(s, "\n## Out of sample ({})\n", l.protocol());
        s.push_str(&l.markdown());
    }
    let skipped = &cal.set.skipped;
    if !skipped.is_empty() {
        let _ = writeln!(s, "\n## Directories not read\n");
        for (d, why) in skipped {
            let _ = writeln!(s, "* {d}: {why}");
        }
    }
    let _ = writeln!(s);
    s.push_str(&report::rows_markdown(&cal.rows, &cal.set.configs));
    if !cal.set.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &cal.set.notes {
            let _ = writeln!(s, "* {n}");
        }
    }
    s
}

pub fn main(args: &SimCalibrateArgs) -> Result<i32> {
    let started = std::time::Instant::now();
    let cal = calibrate(args)?;
    let written = write_results(&cal, &args.out)?;
    pd_common::out!(
        "{}",
        report::render_text(&cal.rows, &cal.set.configs, &cal.summary)
    );
    for (d, why) in &cal.set.skipped {
        pd_common::outln!("skipped {d}: {why}");
    }
    for n in &cal.set.notes {
        pd_common::outln!("note: {n}");
    }
    pd_common::outln!(
        "{written} simulated result files written under {} ({:.2} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if args.fit {
        let consts = constants(&args.sim_config)?;
        let jobs = parallel::workers(args.jobs);
        let idx: Vec<usize> = (0..cal.set.configs.len())
            .filter(|&i| cal.set.configs[i].counted())
            .collect();
        let free = fit::free_params(&args.fit_fix).map_err(anyhow::Error::msg)?;
        let r = fit::fit(
            &cal.set,
            &idx,
            &consts,
            &free,
            args.seed,
            jobs,
            fit::FIT_BUDGET,
        );
        pd_common::outln!(
            "\nfit on {} configurations: loss {:.5} after {} evaluations (shipped constants: {:.5})",
            idx.len(),
            r.loss,
            r.evaluations,
            fit::loss(&cal.set, &idx, &consts, args.seed, jobs)
        );
        for p in fit::PARAMS {
            pd_common::outln!(
                "  {:<26} {:.6e}   (shipped {:.6e})",
                p.name,
                p.get(&r.consts),
                p.get(&consts)
            );
        }
        let runs = simulate_all(&cal.set, &r.consts, args.seed, false, jobs);
        let rows = report::rows(&cal.set, &runs);
        let s = report::summarize(&rows);
        pd_common::outln!("with the fitted constants:");
        pd_common::out!("{}", report::summary_text(&s));
        if let Some(dir) = &args.fit_out {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (gpu, text) in [
                ("h100", SimConstants::builtin_toml(pd_common::GpuKind::H100)),
                ("h200", SimConstants::builtin_toml(pd_common::GpuKind::H200)),
            ] {
                let text = fit::rewrite_toml(text.unwrap_or_default(), gpu, &r.consts);
                SimConstants::parse(&text, gpu)?;
                let path = dir.join(format!("{gpu}.toml"));
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                pd_common::outln!("fitted constants written to {}", path.display());
            }
        }
    }
    let loco = if args.loco {
        let consts = constants(&args.sim_config)?;
        let jobs = parallel::workers(args.jobs);
        let free = fit::free_params(&args.fit_fix).map_err(anyhow::Error::msg)?;
        let folds = args.folds.map(|n| n as usize);
        let l = fit::loco(&cal.set, &consts, &free, args.seed, jobs, folds, true);
        pd_common::out!("{}", l.text());
        Some(l)
    } else {
        None
    };
    if let Some(md) = &args.markdown {
        let text = render_markdown(&cal, loco.as_ref(), &command_line(args));
        if let Some(parent) = md.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(md, text).with_context(|| format!("writing {}", md.display()))?;
        pd_common::outln!("markdown written to {}", md.display());
    }
    Ok(0)
}

#[cfg(test)]
mod timing {
    #[test]
    #[ignore]
    fn per_config_timing() {
        let set = super::load_real(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bm_results/reference"
        ))])
        .unwrap();
        let consts = super::ConstSet::builtin().unwrap();
        for c in &set.configs {
            let t = std::time::Instant::now();
            let _ = super::run::simulate(c, &consts, 0, false);
            eprintln!("{:>8.3} s  {}", t.elapsed().as_secs_f64(), c.name);
        }
    }
}
