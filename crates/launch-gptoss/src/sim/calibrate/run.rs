//! Simulate one real configuration: a fresh simulated deployment runs the directory's
//! points in the study's order, each with vllm bench's test prompt first.

use pd_common::bench::PointMetrics;
use pd_common::deployment::GpuKind;
use pd_common::result::BenchResult;
use pd_common::workload::BenchMode;

use super::data::{RealConfig, RealPoint};
use crate::sim::bench_file::{bench_result, PointCoord};
use crate::sim::engine::{ClusterConfig, Engine, ExpertParallel, SimConstants, SimError};
use crate::sim::vclient::{Load, Prompts, RunOutcome, RunSpec, VirtualClient};

/// GPUs per node of the study's clusters (p5.48xlarge, and its H200 nodes).
pub const STUDY_GPUS_PER_NODE: u32 = 8;

/// Constants for both GPU kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstSet {
    pub h100: SimConstants,
    pub h200: SimConstants,
}

impl ConstSet {
    /// The built-in constants.
    pub fn builtin() -> Result<Self, SimError> {
        Ok(ConstSet {
            h100: SimConstants::builtin(GpuKind::H100)?,
            h200: SimConstants::builtin(GpuKind::H200)?,
        })
    }
    /// Replace the constants of the file's GPU kind (its `gpu` field).
    pub fn apply(&mut self, c: SimConstants) -> Result<(), SimError> {
        match c.gpu.to_ascii_lowercase().as_str() {
            "h100" => self.h100 = c,
            "h200" => self.h200 = c,
            other => {
                return Err(SimError::Config(format!(
                    "constants for gpu '{other}': only h100 and h200 are simulated"
                )))
            }
        }
        Ok(())
    }
    pub fn for_gpu(&self, gpu: GpuKind) -> &SimConstants {
        match gpu {
            GpuKind::H200 => &self.h200,
            _ => &self.h100,
        }
    }
}

/// One simulated point.
#[derive(Debug, Clone)]
pub enum SimPoint {
    /// Simulated: vllm bench's metrics (and, when asked, the result file).
    Done {
        metrics: PointMetrics,
        file: Option<Box<BenchResult>>,
    },
    /// Not simulated: the reason (vLLM's test prompt failed, every request was rejected).
    Failed(String),
}

/// A configuration's simulation.
#[derive(Debug, Clone)]
pub enum ConfigRun {
    /// vLLM would not start this deployment (its reason), or the simulator cannot
    /// build it.
    Refused(String),
    /// One entry per real point, same order.
    Points(Vec<SimPoint>),
}

/// The simulated cluster of a real configuration.
pub fn cluster_of(
    cfg: &RealConfig,
    consts: &ConstSet,
    seed: u64,
) -> (ClusterConfig, ExpertParallel) {
    let (first, decode) = cfg.label.ep_flags();
    (
        ClusterConfig {
            spec: cfg.spec.clone(),
            gpus_per_node: STUDY_GPUS_PER_NODE,
            network: cfg.network,
            constants: consts.for_gpu(cfg.gpu).clone(),
            max_model_len: cfg.max_model_len(),
            seed,
        },
        ExpertParallel { first, decode },
    )
}

/// The benchmark run of a real point.
pub fn run_spec(cfg: &RealConfig, p: &RealPoint, seed: u64) -> RunSpec {
    let load = if p.rate.is_finite() {
        Load::poisson(p.rate, p.max_concurrency, seed)
    } else {
        match p.max_concurrency {
            Some(c) => Load::closed_loop(c),
            None => Load::poisson(f64::INFINITY, None, seed),
        }
    };
    RunSpec {
        load,
        num_prompts: p.num_prompts.max(1),
        input_len: p.input_len,
        output_len: p.output_len,
        prompts: if cfg.workload.mode == BenchMode::DecodeOnly {
            Prompts::SharedPrefix
        } else {
            Prompts::Unique
        },
        warmup: true,
    }
}

/// Simulate a configuration; `files` also builds the result files.
pub fn simulate(cfg: &RealConfig, consts: &ConstSet, seed: u64, files: bool) -> ConfigRun {
    let (cluster, ep) = cluster_of(cfg, consts, seed);
    let mut engine = match Engine::with_expert_parallel(cluster.clone(), ep) {
        Ok(e) => e,
        Err(SimError::Refused(m)) => return ConfigRun::Refused(m),
        Err(e) => return ConfigRun::Refused(e.to_string()),
    };
    let mut client = VirtualClient::new(&mut engine, 1);
    let mut out = Vec::with_capacity(cfg.points.len());
    for p in &cfg.points {
        let spec = run_spec(cfg, p, seed);
        let Some(run) = client.run(&spec) else {
            out.push(SimPoint::Failed(
                "the simulated cluster stalled (a simulator bug)".into(),
            ));
            continue;
        };
        out.push(point_result(cfg, p, &cluster, &run, files));
    }
    ConfigRun::Points(out)
}

fn point_result(
    cfg: &RealConfig,
    p: &RealPoint,
    cluster: &ClusterConfig,
    run: &RunOutcome,
    files: bool,
) -> SimPoint {
    if let Some(m) = &run.test_prompt_error {
        return SimPoint::Failed(format!("Initial test run failed: {m}"));
    }
    let metrics = run.metrics();
    if metrics.completed == 0 {
        let why = run
            .outcomes
            .iter()
            .find_map(|o| o.failure.as_ref().map(|f| f.message.clone()))
            .unwrap_or_else(|| "no request completed".into());
        return SimPoint::Failed(why);
    }
    let file = files.then(|| {
        Box::new(bench_result(
            run,
            &metrics,
            PointCoord {
                kind: p.kind,
                value: p.value,
                rate: p.rate,
                max_concurrency: p.max_concurrency,
            },
            &cluster.spec,
            cluster.gpus_per_node,
            cfg.workload,
            &p.result.model_id,
            "launch-gptoss sim-calibrate",
        ))
    });
    SimPoint::Done { metrics, file }
}
