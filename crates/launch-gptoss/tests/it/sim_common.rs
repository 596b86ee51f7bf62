//! Helpers for the simulator's tests: an in-process server on 127.0.0.1:0, a small
//! blocking GET; the generic helpers come from `pd_testkit`.

use std::net::SocketAddr;
use std::time::Duration;

use launch_gptoss::sim::engine::{ClusterConfig, Engine, NetworkKind, SimConstants};
use launch_gptoss::sim::server::{ServerMonitor, ServerOptions, SimServer};
use pd_common::deployment::{DeploymentSpec, GpuKind};

pub const MAX_MODEL_LEN: u32 = 16000;

/// An in-process simulator server (4×TP2 collocated on H100) on a free port; stopped
/// when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub monitor: ServerMonitor,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let spec = DeploymentSpec::collocated(4, 2);
        let cfg = ClusterConfig {
            spec: spec.clone(),
            gpus_per_node: 8,
            network: NetworkKind::EfaSrd,
            constants: SimConstants::builtin(GpuKind::H100).unwrap(),
            max_model_len: MAX_MODEL_LEN,
            seed: 0,
        };
        let engine = Engine::new(cfg).unwrap();
        let opts = ServerOptions {
            served_model_name: "gptoss".into(),
            model_source: "openai/gpt-oss-120b".into(),
            max_model_len: MAX_MODEL_LEN,
            label: spec.label(),
            gpu: "h100".into(),
            instance: None,
            corrupt_kv: false,
        };
        let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), engine, opts)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let monitor = server.monitor();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            monitor,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub use pd_testkit::net::{free_port, post, send, sse_events};
pub use pd_testkit::process::{pid_alive, wait_until, KillOnDrop, RecordGuard};

/// Blocking GET (for tests outside a runtime): status and body.
pub fn blocking_get(base_url: &str, path: &str) -> (u16, String) {
    let r = blocking_get_full(base_url, path);
    (r.status, r.text())
}

/// Blocking GET: the whole response (headers too).
pub fn blocking_get_full(base_url: &str, path: &str) -> pd_common::http::Response {
    let base = pd_common::url::BaseUrl::parse(base_url, 80).unwrap();
    let client = pd_common::http::Client::new(pd_common::http::ClientOptions {
        timeout: Duration::from_secs(5),
        ..Default::default()
    });
    client.get(&base, path).unwrap()
}
