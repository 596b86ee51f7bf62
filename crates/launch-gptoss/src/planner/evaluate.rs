//! Simulate one layout over the sweep, in virtual time: one fresh simulated deployment
//! runs the points in ascending order, each with vllm bench's test prompt first and the
//! prompt count run-bm uses (5 × C for a concurrency, 500 for a rate), like a real sweep.

use pd_common::workload::{
    prompts_for_concurrency, BenchMode, SweepKind, Workload, PROMPTS_PER_RATE_POINT,
};

use super::enumerate::Layout;
use crate::sim::bench_file::{bench_result, PointCoord};
use crate::sim::calibrate::run::ConstSet;
use crate::sim::engine::{ClusterConfig, Engine, NetworkKind, SimError};
use crate::sim::vclient::{Load, Medians, Prompts, RunSpec, VirtualClient};
use pd_common::result::BenchResult;

/// The load points of the sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Closed loop at each concurrency.
    Concurrency(Vec<u32>),
    /// Poisson arrivals at each rate, with an optional client concurrency cap.
    Rate {
        rates: Vec<f64>,
        max_concurrency: Option<u32>,
    },
}

impl Sweep {
    pub fn kind(&self) -> SweepKind {
        match self {
            Sweep::Concurrency(_) => SweepKind::Concurrency,
            Sweep::Rate { .. } => SweepKind::RequestRate,
        }
    }
    fn points(&self) -> Vec<(PointCoord, u32)> {
        match self {
            Sweep::Concurrency(cs) => cs
                .iter()
                .map(|&c| {
                    (
                        PointCoord {
                            kind: SweepKind::Concurrency,
                            value: f64::from(c),
                            rate: f64::INFINITY,
                            max_concurrency: Some(c),
                        },
                        prompts_for_concurrency(c).min(u64::from(u32::MAX)) as u32,
                    )
                })
                .collect(),
            Sweep::Rate {
                rates,
                max_concurrency,
            } => rates
                .iter()
                .map(|&r| {
                    (
                        PointCoord {
                            kind: SweepKind::RequestRate,
                            value: r,
                            rate: r,
                            max_concurrency: *max_concurrency,
                        },
                        PROMPTS_PER_RATE_POINT as u32,
                    )
                })
                .collect(),
        }
    }
}

/// What the planner needs of a simulated point.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlanPoint {
    /// Concurrency or request rate.
    pub x: f64,
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub output_throughput: f64,
    pub throughput_per_gpu: f64,
    pub completed: u64,
    pub failed: u64,
}

/// A layout's sweep, or why it was not simulated.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub layout: Layout,
    pub points: Vec<PlanPoint>,
    /// The result files (kept for the layouts the planner writes out).
    pub files: Vec<(PointCoord, BenchResult)>,
    /// vLLM would refuse the deployment (its reason).
    pub refused: Option<String>,
}

/// Everything common to the evaluations.
#[derive(Debug, Clone)]
pub struct Setup {
    pub consts: ConstSet,
    pub gpus_per_node: u32,
    pub network: NetworkKind,
    pub workload: Workload,
    pub max_model_len: u32,
    pub sweep: Sweep,
    pub seed: u64,
    pub model_id: String,
}

/// Simulate a layout over the sweep; `keep_files` keeps the result files.
pub fn evaluate(layout: &Layout, setup: &Setup, keep_files: bool) -> Evaluation {
    let cluster = ClusterConfig {
        spec: layout.spec.clone(),
        gpus_per_node: setup.gpus_per_node,
        network: setup.network,
        constants: setup.consts.for_gpu(layout.spec.gpu).clone(),
        max_model_len: setup.max_model_len,
        seed: setup.seed,
    };
    let mut out = Evaluation {
        layout: layout.clone(),
        points: Vec::new(),
        files: Vec::new(),
        refused: None,
    };
    let mut engine = match Engine::with_expert_parallel(cluster.clone(), layout.ep) {
        Ok(e) => e,
        Err(SimError::Refused(m)) => {
            out.refused = Some(m);
            return out;
        }
        Err(e) => {
            out.refused = Some(e.to_string());
            return out;
        }
    };
    let gpus = f64::from(layout.gpus().max(1));
    let mut client = VirtualClient::new(&mut engine, 1);
    for (coord, prompts) in setup.sweep.points() {
        let load = if coord.rate.is_finite() {
            Load::poisson(coord.rate, coord.max_concurrency, setup.seed)
        } else {
            Load::closed_loop(coord.max_concurrency.unwrap_or(1))
        };
        let spec = RunSpec {
            load,
            num_prompts: prompts,
            input_len: setup.workload.input_len(),
            output_len: setup.workload.output_len(),
            prompts: if setup.workload.mode == BenchMode::DecodeOnly {
                Prompts::SharedPrefix
            } else {
                Prompts::Unique
            },
            warmup: true,
        };
        let Some(run) = client.run(&spec) else {
            out.refused = Some("the simulated cluster stalled (a simulator bug)".into());
            return out;
        };
        if let Some(e) = &run.test_prompt_error {
            out.refused = Some(format!("Initial test run failed: {e}"));
            return out;
        }
        let m = run.metrics();
        let md = Medians::of(&m);
        out.points.push(PlanPoint {
            x: coord.value,
            ttft_ms: md.ttft_ms,
            tpot_ms: md.tpot_ms,
            output_throughput: md.output_throughput,
            throughput_per_gpu: md.output_throughput / gpus,
            completed: md.completed,
            failed: md.failed,
        });
        if keep_files {
            let file = bench_result(
                &run,
                &m,
                coord,
                &cluster.spec,
                cluster.gpus_per_node,
                setup.workload,
                &setup.model_id,
                "launch-gptoss plan",
            );
            out.files.push((coord, file));
        }
    }
    out
}
