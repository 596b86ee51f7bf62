//! Resolve the command line and the deployment record into one run configuration.
//! Command-line values win over the record; the record wins over built-in defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pd_common::deployment::{default_record_path, DeploymentRecord};
use pd_common::naming::{result_dir_name, DEFAULT_RESULTS_ROOT};
use pd_common::workload::{prompts_for_concurrency, PROMPTS_PER_RATE_POINT};
use pd_common::{SweepKind, Workload};

use crate::cli::{Cli, DEFAULT_BASE_URL, DEFAULT_SERVED_MODEL};
use crate::prompt::PromptFormat;
use pd_common::bench::{Goodput, MetricName};

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read the deployment record: {0}")]
    Record(pd_common::Error),
}

impl From<pd_common::Error> for ConfigError {
    fn from(e: pd_common::Error) -> Self {
        ConfigError::Record(e)
    }
}

/// One sweep point to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    pub kind: SweepKind,
    /// Concurrency or request rate.
    pub value: f64,
    pub num_prompts: u64,
    /// Requests per second (`inf` for concurrency points).
    pub rate: f64,
    pub max_concurrency: Option<u64>,
    /// Result file name.
    pub file_name: String,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub exp_name: String,
    pub sweep: SweepKind,
    pub points: Vec<PointSpec>,
    pub workload: Workload,
    pub base_url: String,
    pub served_model: String,
    /// `--model`, or the record's model source.
    pub model_id: Option<String>,
    pub record: Option<DeploymentRecord>,
    pub record_path: Option<PathBuf>,
    pub result_dir: PathBuf,
    pub percentiles: Vec<f64>,
    pub metrics: Vec<MetricName>,
    pub goodput: Option<Goodput>,
    pub seed: u64,
    pub burstiness: f64,
    pub save_detailed: bool,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub warmup: u64,
    pub resume: bool,
    pub prompt_format: PromptFormat,
    pub vocab_size: u32,
    pub label: Option<String>,
    pub backend: String,
    pub endpoint: String,
    pub grace: Duration,
    pub continuous_usage: bool,
    pub progress_bar: bool,
    /// The exact command line.
    pub command: Vec<String>,
}

impl RunConfig {
    /// Resolve `cli` (with the process `argv` for the manifest).
    pub fn resolve(cli: &Cli, argv: Vec<String>) -> Result<Self, ConfigError> {
        let workload = Workload::new(cli.itl, cli.otl, cli.mode.into())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let record_path = if cli.no_deployment {
            None
        } else {
            Some(
                cli.deployment_file
                    .clone()
                    .unwrap_or_else(default_record_path),
            )
        };
        let record = match (&record_path, &cli.deployment_file) {
            (None, _) => None,
            // An explicitly named record must exist.
            (Some(p), Some(_)) => Some(DeploymentRecord::read(p)?),
            (Some(p), None) => DeploymentRecord::read_optional(p)?,
        };
        let base_url = cli
            .base_url
            .clone()
            .or_else(|| record.as_ref().map(|r| r.base_url.clone()))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let served_model = cli
            .served_model_name
            .clone()
            .or_else(|| record.as_ref().map(|r| r.served_model_name.clone()))
            .unwrap_or_else(|| DEFAULT_SERVED_MODEL.to_string());
        let model_id = cli
            .model
            .clone()
            .or_else(|| record.as_ref().map(|r| r.spec.model_source.clone()));
        let sweep: SweepKind = cli.sweep_type.into();
        let points = build_points(cli, sweep)?;
        if cli.result_filename.is_some() && points.len() > 1 {
            return Err(ConfigError::Invalid(format!(
                "--result-filename names one file but the sweep has {} points; give a single -c/-r value",
                points.len()
            )));
        }
        let result_dir = cli.result_dir.clone().unwrap_or_else(|| {
            Path::new(DEFAULT_RESULTS_ROOT).join(result_dir_name(
                &served_model,
                &workload,
                &cli.exp_name,
            ))
        });
        let goodput = if cli.goodput.is_empty() {
            None
        } else {
            let mut g = Goodput::default();
            for t in &cli.goodput {
                g.add_token(t).map_err(ConfigError::Invalid)?;
            }
            Some(g)
        };
        let progress_bar = !cli.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Ok(RunConfig {
            exp_name: cli.exp_name.clone(),
            sweep,
            points,
            workload,
            base_url,
            served_model,
            model_id,
            record,
            record_path,
            result_dir,
            percentiles: cli.metric_percentiles.0.clone(),
            metrics: cli.percentile_metrics.0.clone(),
            goodput,
            seed: cli.seed,
            burstiness: cli.burstiness,
            save_detailed: cli.save_detailed,
            api_key: cli.api_key.clone().filter(|k| !k.is_empty()),
            timeout: Duration::from_secs_f64(cli.timeout),
            warmup: cli.warmup,
            resume: cli.resume,
            prompt_format: cli.prompt_format,
            vocab_size: cli.vocab_size,
            label: cli.label.clone(),
            backend: cli.backend.as_str().to_string(),
            endpoint: cli.endpoint.clone(),
            grace: Duration::from_secs_f64(cli.grace),
            continuous_usage: !cli.no_continuous_usage,
            progress_bar,
            command: argv,
        })
    }
}

fn build_points(cli: &Cli, sweep: SweepKind) -> Result<Vec<PointSpec>, ConfigError> {
    let file = |kind, value| {
        cli.result_filename
            .clone()
            .unwrap_or_else(|| pd_common::naming::point_file_name(kind, value))
    };
    let points = match sweep {
        SweepKind::Concurrency => {
            let list: Vec<u64> = match cli.max_concurrency {
                Some(c) => vec![c],
                None => cli.concurrency.0.iter().map(|&c| u64::from(c)).collect(),
            };
            list.into_iter()
                .map(|c| PointSpec {
                    kind: sweep,
                    value: c as f64,
                    num_prompts: cli.num_prompts.unwrap_or_else(|| {
                        prompts_for_concurrency(u32::try_from(c).unwrap_or(u32::MAX))
                    }),
                    rate: f64::INFINITY,
                    max_concurrency: Some(c),
                    file_name: file(sweep, c as f64),
                })
                .collect::<Vec<_>>()
        }
        SweepKind::RequestRate => cli
            .request_rate
            .0
            .iter()
            .map(|&r| PointSpec {
                kind: sweep,
                value: r,
                num_prompts: cli.num_prompts.unwrap_or(PROMPTS_PER_RATE_POINT),
                rate: r,
                max_concurrency: cli.max_concurrency,
                file_name: file(sweep, r),
            })
            .collect(),
    };
    let mut seen = std::collections::HashSet::new();
    for p in &points {
        if !seen.insert(p.file_name.clone()) {
            return Err(ConfigError::Invalid(format!(
                "the sweep lists the same point twice ({})",
                p.file_name
            )));
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(args: &[&str]) -> Result<RunConfig, ConfigError> {
        let mut v = vec!["run-bm", "--no-deployment"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(&v).unwrap();
        RunConfig::resolve(&cli, vec![])
    }

    #[test]
    fn concurrency_points() {
        let c = resolve(&["-c", "4,16", "--itl", "100", "--otl", "10", "-e", "x"]).unwrap();
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[1].num_prompts, 80);
        assert_eq!(c.points[1].max_concurrency, Some(16));
        assert!(c.points[1].rate.is_infinite());
        assert_eq!(c.points[0].file_name, "conc4.json");
        assert_eq!(
            c.result_dir,
            Path::new("bm_results/gptoss_itl100_otl10_mixed_x")
        );
    }

    #[test]
    fn rate_points_and_errors() {
        let c = resolve(&[
            "-t",
            "request-rate",
            "-r",
            "0.5,2",
            "--max-concurrency",
            "8",
        ])
        .unwrap();
        assert_eq!(c.points[0].file_name, "rr0.5.json");
        assert_eq!(
            (c.points[0].num_prompts, c.points[0].max_concurrency),
            (500, Some(8))
        );
        assert!(resolve(&["-c", "4,8", "--result-filename", "x.json"]).is_err());
        assert!(resolve(&["-c", "4,4"]).is_err());
    }

    #[test]
    fn record_values_unless_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dep.toml");
        let spec = pd_common::DeploymentSpec::collocated(4, 2);
        let rec = DeploymentRecord {
            format_version: 1,
            backend: pd_common::ServingBackend::Sim,
            base_url: "http://127.0.0.1:9999".into(),
            served_model_name: "sim-model".into(),
            label: spec.label(),
            total_gpus: 8,
            gpus_per_node: 8,
            nodes: vec![],
            command: vec![],
            tool_version: "0".into(),
            created_at: "now".into(),
            network: None,
            software: Default::default(),
            env: Default::default(),
            spec,
            stop: pd_common::StopHandle::Pid { pid: 1 },
        };
        rec.write(&path).unwrap();
        let p = path.to_str().unwrap();
        let cli = Cli::try_parse_from(["run-bm", "--deployment-file", p]).unwrap();
        let c = RunConfig::resolve(&cli, vec![]).unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.served_model.as_str()),
            ("http://127.0.0.1:9999", "sim-model")
        );
        assert_eq!(c.model_id.as_deref(), Some("openai/gpt-oss-120b"));
        let cli = Cli::try_parse_from([
            "run-bm",
            "--deployment-file",
            p,
            "-u",
            "http://h:1",
            "-m",
            "m",
        ])
        .unwrap();
        let c = RunConfig::resolve(&cli, vec![]).unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.served_model.as_str()),
            ("http://h:1", "m")
        );
        let cli =
            Cli::try_parse_from(["run-bm", "--deployment-file", "/nonexistent/x.toml"]).unwrap();
        assert!(RunConfig::resolve(&cli, vec![]).is_err());
    }
}
