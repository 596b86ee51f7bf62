//! The vLLM-compatible result file of a simulated point (what `run-bm` would have written
//! against the simulated cluster), so that `viz` plots simulated and real points alike.

use pd_common::bench::PointMetrics;
use pd_common::deployment::{DeploymentSpec, ServingBackend};
use pd_common::result::{BenchResult, PdLabExtra, RequestRate};
use pd_common::workload::{SweepKind, Workload};

use super::vclient::RunOutcome;

/// Where a simulated point sits in its sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointCoord {
    pub kind: SweepKind,
    /// Concurrency or request rate.
    pub value: f64,
    /// Request rate (`inf` for the closed loop).
    pub rate: f64,
    pub max_concurrency: Option<u32>,
}

/// Build the result file of a simulated point. `tool` names the pd-lab command.
#[allow(clippy::too_many_arguments)]
pub fn bench_result(
    run: &RunOutcome,
    m: &PointMetrics,
    coord: PointCoord,
    spec: &DeploymentSpec,
    gpus_per_node: u32,
    workload: Workload,
    model_id: &str,
    tool: &str,
) -> BenchResult {
    let ok: Vec<_> = run.outcomes.iter().filter(|o| o.is_success()).collect();
    BenchResult {
        date: chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string(),
        endpoint_type: "vllm".to_string(),
        backend: "vllm".to_string(),
        label: None,
        model_id: model_id.to_string(),
        tokenizer_id: Some(model_id.to_string()),
        num_prompts: run.outcomes.len() as u64,
        request_rate: RequestRate::from_f64(coord.rate),
        burstiness: 1.0,
        max_concurrency: coord.max_concurrency.map(u64::from),
        input_lens: Some(ok.iter().map(|o| o.prompt_len).collect()),
        output_lens: Some(ok.iter().map(|o| o.output_len()).collect()),
        ttfts: Some(ok.iter().map(|o| o.ttft).collect()),
        itls: Some(ok.iter().map(|o| o.chunks.gaps().collect()).collect()),
        errors: Some(
            run.outcomes
                .iter()
                .map(|o| o.error_text().to_string())
                .collect(),
        ),
        pd_lab: Some(PdLabExtra {
            tool: tool.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            serving_backend: Some(ServingBackend::Sim),
            deployment_label: Some(spec.label()),
            deploy_mode: Some(spec.mode()),
            total_gpus: Some(spec.total_gpus()),
            gpus_per_node: Some(gpus_per_node),
            workload: Some(workload),
            sweep: Some(coord.kind),
            sweep_value: Some(coord.value),
            other: Default::default(),
        }),
        ..BenchResult::from_metrics(m)
    }
}
