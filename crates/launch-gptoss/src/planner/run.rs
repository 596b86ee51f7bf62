//! The planning run: enumerate, simulate in parallel with a progress bar, rank, compare.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pd_common::deployment::GpuKind;
use pd_common::workload::{parse_concurrency_list, parse_rate_list, Workload, ALL_CONCURRENCIES};

use super::evaluate::{self, Evaluation, Setup, Sweep};
use super::{accuracy, compare, enumerate, rank};
use crate::cli::PlanArgs;
use crate::sim::calibrate::{self, data::max_model_len_for};
use crate::sim::engine::NetworkKind;
use crate::sim::parallel;
use crate::sim::plan::resolve_network;

/// Largest cluster the planner enumerates.
pub const MAX_GPUS: u32 = 1024;
/// Largest concurrency of a sweep point.
pub const MAX_CONCURRENCY: u32 = 4096;
/// Largest node size.
pub const MAX_GPUS_PER_NODE: u32 = 64;

/// Everything a plan computed.
pub struct Plan {
    pub setup: Setup,
    pub gpus: u32,
    pub slo: rank::Slo,
    pub evals: Vec<Evaluation>,
    pub ranked: Vec<rank::Ranked>,
    pub frontier: Vec<rank::FrontierPoint>,
    pub comparison: Option<compare::Comparison>,
    pub elapsed_s: f64,
}

/// The sweep the arguments ask for.
pub fn sweep_of(args: &PlanArgs) -> Result<Sweep> {
    match (&args.rate, &args.concurrency) {
        (Some(r), _) => Ok(Sweep::Rate {
            rates: parse_rate_list(r)?,
            max_concurrency: args.max_concurrency,
        }),
        (None, Some(c)) => Ok(Sweep::Concurrency(parse_concurrency_list(c)?)),
        (None, None) => Ok(Sweep::Concurrency(ALL_CONCURRENCIES.to_vec())),
    }
}

/// Enumerate, simulate, rank.
pub fn plan(args: &PlanArgs, progress: bool) -> Result<Plan> {
    if args.gpus == 0 {
        bail!("--gpus must be at least 1");
    }
    if args.gpus_per_node == 0 {
        bail!("--gpus-per-node must be at least 1");
    }
    if args.gpus > MAX_GPUS {
        bail!(
            "--gpus {} is more than the planner enumerates ({MAX_GPUS}): every collocated \
             replica count is a layout, so the count grows with the cluster",
            args.gpus
        );
    }
    if args.gpus_per_node > MAX_GPUS_PER_NODE {
        bail!(
            "--gpus-per-node {} is not a GPU node size (at most {MAX_GPUS_PER_NODE})",
            args.gpus_per_node
        );
    }
    let started = Instant::now();
    let gpu: GpuKind = args.gpu.into();
    let workload = Workload::new(args.itl, args.otl, args.mode.into())?;
    let sweep = sweep_of(args)?;
    if let Sweep::Concurrency(cs) = &sweep {
        if let Some(c) = cs.iter().find(|c| **c > MAX_CONCURRENCY) {
            bail!(
                "concurrency {c} is beyond what the planner simulates (at most {MAX_CONCURRENCY}; \
                 every point simulates 5 × C requests for every layout)"
            );
        }
    }
    let (network, _) = resolve_network(args.network.map(Into::into), gpu, false, None);
    let consts = calibrate::constants(&args.sim_config)?;
    let max_model_len = args
        .max_model_len
        .unwrap_or_else(|| max_model_len_for(workload.input_len(), workload.output_len()));
    let setup = Setup {
        consts,
        gpus_per_node: args.gpus_per_node,
        network,
        workload,
        max_model_len,
        sweep: sweep.clone(),
        seed: args.seed,
        model_id: args.model_id.clone(),
    };
    let layouts = enumerate::enumerate(&enumerate::Space {
        gpus: args.gpus,
        gpus_per_node: args.gpus_per_node,
        gpu,
        collocated: args.layouts.is_empty()
            || args.layouts.contains(&crate::cli::ModeArg::Collocated),
        pd_pack: args.layouts.is_empty() || args.layouts.contains(&crate::cli::ModeArg::PdPack),
        pd_spread: args.layouts.is_empty() || args.layouts.contains(&crate::cli::ModeArg::PdSpread),
        expert_parallel: !args.no_ep,
    });
    if layouts.is_empty() {
        bail!(
            "no layout fits {} GPUs with {} per node under the chosen modes",
            args.gpus,
            args.gpus_per_node
        );
    }
    let bar = progress_bar(progress, layouts.len() as u64);
    let done = AtomicU64::new(0);
    let jobs = parallel::workers(args.jobs);
    let evals = parallel::map(
        &layouts,
        jobs,
        |l| evaluate::evaluate(l, &setup, false),
        || {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(b) = &bar {
                b.set_position(n);
            }
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let slo = rank::Slo {
        ttft_ms: args.slo_ttft,
        tpot_ms: args.slo_tpot,
    };
    let ranked = rank::rank(&evals, &slo, accuracy::KNOWN_ERROR.throughput_pct);
    let frontier = rank::frontier(&evals);
    let comparison = if args.compare_with.is_empty() {
        None
    } else {
        Some(
            compare::compare(&evals, &args.compare_with, &sweep, network, &slo, &workload)
                .context("comparing with the measured runs")?,
        )
    };
    Ok(Plan {
        setup,
        gpus: args.gpus,
        slo,
        evals,
        ranked,
        frontier,
        comparison,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

fn progress_bar(enabled: bool, total: u64) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let pb = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "simulating {pos}/{len} layouts [{bar:30}] {elapsed_precise} (eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

/// The network a plan uses for a GPU kind when none is given.
pub fn default_network(gpu: GpuKind) -> NetworkKind {
    resolve_network(None, gpu, false, None).0
}
