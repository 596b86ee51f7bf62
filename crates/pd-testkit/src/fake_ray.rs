//! A fake Ray dashboard + Serve endpoint for the Ray backend's tests: a hyper server on
//! 127.0.0.1:0 in its own thread, answering with the JSON shapes of Ray 2.60
//! (see docs/RAY-SERVE-API.md) and recording every request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
}

/// The scripted cluster.
#[derive(Debug)]
pub struct FakeState {
    pub version: String,
    pub nodes: Value,
    /// GET /api/serve/applications/ before any PUT.
    pub initial: Value,
    /// Successive GET answers after the first PUT (the last one repeats). Applications not
    /// named in the latest PUT are filtered out, so cleanup PUTs are reflected.
    pub after_put: Vec<Value>,
    pub script_pos: usize,
    pub put_done: bool,
    pub declared: Option<Vec<String>>,
    pub deleted: bool,
    /// Status and text of PUT answers.
    pub put_status: u16,
    pub put_text: String,
    /// GET /v1/models answer (None: 404).
    pub models: Option<Value>,
    /// The Jobs REST API (`/api/jobs/`).
    pub jobs: FakeJobs,
    pub seen: Vec<Seen>,
}

/// What the cluster's job driver prints for a submitted entrypoint.
pub type JobLogs = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The scripted Jobs REST API: every submitted job walks through `statuses` (one per
/// `GET /api/jobs/<id>`, the last repeats) and its logs are `logs(entrypoint)`.
pub struct FakeJobs {
    pub statuses: Vec<String>,
    /// `message` of a job in a terminal status.
    pub message: String,
    pub logs: Option<JobLogs>,
    /// Status of `POST /api/jobs/` answers (200: accepted).
    pub submit_status: u16,
    /// Submitted bodies, in order.
    pub submitted: Vec<Value>,
    /// Ids stopped with `POST /api/jobs/<id>/stop`.
    pub stopped: Vec<String>,
    polls: usize,
}

impl Default for FakeJobs {
    fn default() -> Self {
        FakeJobs {
            statuses: vec!["SUCCEEDED".into()],
            message: "Job finished successfully.".into(),
            logs: None,
            submit_status: 200,
            submitted: Vec::new(),
            stopped: Vec::new(),
            polls: 0,
        }
    }
}

impl std::fmt::Debug for FakeJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeJobs")
            .field("statuses", &self.statuses)
            .field("submitted", &self.submitted.len())
            .field("stopped", &self.stopped)
            .finish()
    }
}

fn jobs_respond(j: &mut FakeJobs, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let rest = path.trim_start_matches("/api/jobs/");
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let entry = j
        .submitted
        .iter()
        .find(|b| b["submission_id"].as_str() == Some(id))
        .cloned();
    match (method, id, tail) {
        ("POST", "", "") => {
            if j.submit_status != 200 {
                return (j.submit_status, "job submission refused".into());
            }
            let b = body.unwrap_or(Value::Null);
            let sid = b["submission_id"]
                .as_str()
                .unwrap_or("raysubmit_fake")
                .to_string();
            j.submitted.push(b);
            (
                200,
                json!({"job_id": null, "submission_id": sid}).to_string(),
            )
        }
        (_, _, _) if entry.is_none() => (404, format!("Job {id} does not exist")),
        ("GET", _, "") => {
            let stopped = j.stopped.iter().any(|s| s == id);
            let status = if stopped {
                "STOPPED".to_string()
            } else {
                let i = j.polls.min(j.statuses.len().saturating_sub(1));
                j.polls += 1;
                j.statuses
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "SUCCEEDED".into())
            };
            let terminal = matches!(status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED");
            let message = if terminal {
                j.message.clone()
            } else {
                "Job is currently running.".into()
            };
            (200, json!({"type": "SUBMISSION", "submission_id": id, "status": status, "message": message,
                         "entrypoint": entry.map(|e| e["entrypoint"].clone())}).to_string())
        }
        ("GET", _, "logs") => {
            let ep = entry
                .as_ref()
                .and_then(|e| e["entrypoint"].as_str())
                .unwrap_or("");
            let logs = j.logs.as_ref().map(|f| f(ep)).unwrap_or_default();
            (200, json!({"logs": logs}).to_string())
        }
        ("POST", _, "stop") => {
            j.stopped.push(id.to_string());
            (200, json!({"stopped": true}).to_string())
        }
        _ => (404, "not found".into()),
    }
}

pub struct FakeRay {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeRay {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn nodes_body(nodes: &[(&str, f64)]) -> Value {
    let list: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (ip, gpus))| {
            let mut res = json!({"CPU": 8.0, "memory": 1.0e10, format!("node:{ip}"): 1.0});
            if *gpus > 0.0 {
                res["GPU"] = json!(gpus);
            }
            json!({"node_id": format!("node{i}"), "node_ip": ip, "is_head_node": i == 0, "state": "ALIVE",
                   "state_message": null, "node_name": ip, "resources_total": res, "labels": {}})
        })
        .collect();
    json!({"result": true, "msg": "", "data": {"result": {"total": list.len(), "num_after_truncation": list.len(),
           "num_filtered": list.len(), "result": list, "partial_failure_warning": "", "warnings": null}}})
}

/// Serve not started.
pub fn empty_state() -> Value {
    json!({"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": null})
}

/// A running Serve with the given applications.
pub fn serve_state(apps: Vec<Value>) -> Value {
    let mut map = serde_json::Map::new();
    for a in apps {
        map.insert(a["name"].as_str().unwrap().to_string(), a);
    }
    json!({"controller_info": {"node_id": "node0", "actor_name": "SERVE_CONTROLLER_ACTOR"},
           "proxy_location": "EveryNode",
           "http_options": {"host": "127.0.0.1", "port": 8000, "root_path": "", "request_timeout_s": null},
           "proxies": {"node0": {"status": "HEALTHY"}},
           "applications": map, "target_capacity": null})
}

/// A deployment entry.
pub fn deployment(
    name: &str,
    status: &str,
    trigger: &str,
    message: &str,
    target: u64,
    replica_states: &[&str],
) -> Value {
    let replicas: Vec<Value> = replica_states
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"replica_id": format!("r{i}"), "actor_name": format!("SERVE_REPLICA::{name}#{i}"), "state": s}))
        .collect();
    json!({"name": name, "status": status, "status_trigger": trigger, "message": message,
           "deployment_config": {"name": name}, "target_num_replicas": target, "required_resources": {"CPU": 1},
           "replicas": replicas, "recent_dead_replicas": []})
}

/// An application entry.
pub fn app(name: &str, route: &str, status: &str, message: &str, deployments: Vec<Value>) -> Value {
    let mut ds = serde_json::Map::new();
    for d in deployments {
        ds.insert(d["name"].as_str().unwrap().to_string(), d);
    }
    json!({"name": name, "route_prefix": route, "docs_path": null, "status": status, "message": message,
           "last_deployed_time_s": 1.0,
           "deployed_app_config": {"name": name, "route_prefix": route, "import_path": format!("{name}:app")},
           "source": "declarative", "deployments": ds, "external_scaler_enabled": false})
}

pub fn hello_app() -> Value {
    app(
        "hello",
        "/hello",
        "RUNNING",
        "",
        vec![deployment(
            "Hello",
            "HEALTHY",
            "CONFIG_UPDATE_COMPLETED",
            "",
            1,
            &["RUNNING"],
        )],
    )
}

fn filtered(mut state: Value, declared: &Option<Vec<String>>) -> Value {
    if let (Some(names), Some(apps)) = (
        declared,
        state.get_mut("applications").and_then(Value::as_object_mut),
    ) {
        apps.retain(|k, _| names.contains(k));
    }
    state
}

fn respond(
    st: &mut FakeState,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String, &'static str) {
    st.seen.push(Seen {
        method: method.to_string(),
        path: path.to_string(),
        body: body.clone(),
    });
    let json_ct = "application/json; charset=utf-8";
    match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/api/version") => (200, json!({"version": "4", "ray_version": st.version, "ray_commit": "x", "session_name": "s"}).to_string(), json_ct),
        ("GET", "/api/v0/nodes") => (200, st.nodes.to_string(), json_ct),
        ("GET", "/api/serve/applications/") => {
            if st.deleted {
                return (200, empty_state().to_string(), json_ct);
            }
            let s = if st.put_done && !st.after_put.is_empty() {
                let i = st.script_pos.min(st.after_put.len() - 1);
                st.script_pos += 1;
                st.after_put[i].clone()
            } else {
                st.initial.clone()
            };
            (200, filtered(s, &st.declared).to_string(), json_ct)
        }
        ("PUT", "/api/serve/applications/") => {
            if st.put_status != 200 {
                return (st.put_status, st.put_text.clone(), "text/plain");
            }
            let names: Vec<String> = body
                .as_ref()
                .and_then(|b| b.get("applications"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            st.declared = Some(names);
            st.put_done = true;
            st.deleted = false;
            (200, String::new(), "text/plain")
        }
        ("DELETE", "/api/serve/applications/") => {
            st.deleted = true;
            (200, String::new(), "text/plain")
        }
        (_, p) if p.starts_with("/api/jobs/") => {
            let (status, text) = jobs_respond(&mut st.jobs, method, p, body);
            (status, text, json_ct)
        }
        ("GET", "/v1/models") => match &st.models {
            Some(m) if st.put_done && !st.deleted => (200, m.to_string(), "application/json"),
            _ => (404, "{\"detail\": \"Not Found\"}".into(), "application/json"),
        },
        _ => (404, "not found".into(), "text/plain"),
    }
}

impl FakeRay {
    pub fn start(
        version: &str,
        nodes: Value,
        initial: Value,
        after_put: Vec<Value>,
        models: Option<Value>,
    ) -> FakeRay {
        let state = Arc::new(Mutex::new(FakeState {
            version: version.to_string(),
            nodes,
            initial,
            after_put,
            script_pos: 0,
            put_done: false,
            declared: None,
            deleted: false,
            put_status: 200,
            put_text: String::new(),
            models,
            jobs: FakeJobs::default(),
            seen: Vec::new(),
        }));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        acc = listener.accept() => {
                            let Ok((stream, _)) = acc else { continue };
                            let st = st.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                                    let st = st.clone();
                                    async move {
                                        let method = req.method().to_string();
                                        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                                        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                        let body = if bytes.is_empty() { None } else { serde_json::from_slice(&bytes).ok() };
                                        let (status, text, ct) = respond(&mut st.lock().unwrap(), &method, &path, body);
                                        Ok::<_, Infallible>(Response::builder().status(status).header("content-type", ct)
                                            .body(Full::new(Bytes::from(text))).unwrap())
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc).await;
                            });
                        }
                    }
                }
            });
        });
        FakeRay {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn puts(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "PUT")
            .filter_map(|s| s.body)
            .collect()
    }

    pub fn count(&self, method: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }
}

/// A closed loopback port (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
