//! Helpers for the simulator's tests: an in-process server on 127.0.0.1:0, a small
//! HTTP/1.1 client, SSE parsing, free ports and process cleanup.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use launch_gptoss::sim::engine::{ClusterConfig, Engine, NetworkKind, SimConstants};
use launch_gptoss::sim::server::{ServerMonitor, ServerOptions, SimServer};
use pd_common::deployment::{DeploymentSpec, GpuKind};
use serde_json::Value;

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

/// A response: status, headers (lower-case names), body text.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn post(addr: SocketAddr, body: &Value) -> Resp {
    send(addr, "POST", "/v1/completions", Some(&body.to_string())).await
}

/// The `data:` payloads of an SSE body, in order (`[DONE]` kept as a string).
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Blocking GET through std (for tests outside a runtime).
pub fn blocking_get(base_url: &str, path: &str) -> (u16, String) {
    launch_gptoss::sim::process::http_get(base_url, path, Duration::from_secs(5)).unwrap()
}

pub fn pid_alive(pid: u32) -> bool {
    launch_gptoss::sim::process::pid_alive(pid)
}

/// Kills a pid on drop (teardown even when the test fails).
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            if pid_alive(pid) {
                // SAFETY: signalling a process this test started.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

/// Kill whatever a deployment record points at (test teardown).
pub struct RecordGuard<'a>(pub &'a Path);

impl Drop for RecordGuard<'_> {
    fn drop(&mut self) {
        if let Ok(Some(r)) = pd_common::DeploymentRecord::read_optional(self.0) {
            if let pd_common::StopHandle::Pid { pid } = r.stop {
                drop(KillOnDrop(Some(pid)));
            }
        }
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}
