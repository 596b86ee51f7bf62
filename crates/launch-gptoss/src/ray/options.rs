//! What the Ray backend needs besides the [`LaunchRequest`](crate::options::LaunchRequest):
//! built from the flags by the command layer, never from clap types here.

use std::path::PathBuf;
use std::time::Duration;

use pd_common::url::BaseUrl;

use super::env::CallerEnv;
use super::nodes::Node;

/// Default dashboard address.
pub const DEFAULT_DASHBOARD: &str = "http://127.0.0.1:8265";
/// Default port of the Serve HTTP endpoint.
pub const DEFAULT_SERVE_PORT: u16 = 8000;

/// Knobs of the Ray backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RayOptions {
    /// The dashboard (Serve REST API).
    pub dashboard: BaseUrl,
    /// The Serve HTTP endpoint; default `http://<dashboard host>:8000`.
    pub serve_url: Option<BaseUrl>,
    /// Serve application name.
    pub app_name: String,
    /// `experimental_configs.stream_batching_interval_ms`.
    pub stream_batching_interval_ms: u32,
    /// Ingress (and PD proxy) replicas.
    pub ingress_replicas: u32,
    /// Deploy vLLM's DecodeBenchConnector (collocated only).
    pub decode_bench: bool,
    /// `--overrides FILE`.
    pub overrides: Option<PathBuf>,
    /// `--nodes` for a dry run (None: ask the cluster, or assume one).
    pub nodes: Option<Vec<Node>>,
    /// Leave a failed deployment in place.
    pub keep_on_failure: bool,
    /// The caller's environment variables that shape the config.
    pub caller_env: CallerEnv,
    pub timings: Timings,
}

impl Default for RayOptions {
    fn default() -> Self {
        RayOptions {
            dashboard: BaseUrl::parse(DEFAULT_DASHBOARD, 8265)
                .unwrap_or_else(|_| unreachable!("the default dashboard URL parses")),
            serve_url: None,
            app_name: "gptoss".into(),
            stream_batching_interval_ms: 0,
            ingress_replicas: 16,
            decode_bench: false,
            overrides: None,
            nodes: None,
            keep_on_failure: false,
            caller_env: CallerEnv::default(),
            timings: Timings::default(),
        }
    }
}

/// Time limits and intervals (tests shorten them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// Time between two status polls.
    pub poll_interval: Duration,
    /// Timeout of one dashboard request.
    pub request_timeout: Duration,
    /// Timeout of one `GET /v1/models` (a route without replicas hangs).
    pub models_timeout: Duration,
    /// Connect timeout of a dry run probing for a cluster.
    pub probe_timeout: Duration,
    /// How long removal waits for the application to disappear.
    pub removal_timeout: Duration,
    /// Print a progress line at least this often even when nothing changes.
    pub heartbeat: Duration,
    /// How often an empty node list is re-read (1 s apart) before the pre-flight judges it.
    pub empty_node_retries: u32,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll_interval: Duration::from_millis(1500),
            request_timeout: Duration::from_secs(30),
            models_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            removal_timeout: Duration::from_secs(120),
            heartbeat: Duration::from_secs(30),
            empty_node_retries: 10,
        }
    }
}
