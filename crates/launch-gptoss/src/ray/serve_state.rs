//! Reading `GET /api/serve/applications/`: application and deployment states, replica
//! counts, Ray's messages, and the configs of other applications we must keep.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::error::{strip_ansi, tail, RayError};

/// Ray's message for replicas that wait for resources (or are still loading).
pub const UNSCHEDULED_MARKER: &str = "to be scheduled";

/// One deployment of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    pub name: String,
    pub status: String,
    pub status_trigger: String,
    pub message: String,
    pub target_replicas: Option<u64>,
    /// Replica state → count.
    pub replicas: BTreeMap<String, u32>,
}

impl DeploymentView {
    pub fn running(&self) -> u32 {
        self.replicas.get("RUNNING").copied().unwrap_or(0)
    }

    /// `Name HEALTHY 2/4 (STARTING 2)`.
    pub fn summary(&self) -> String {
        let target = self
            .target_replicas
            .map_or_else(|| "?".to_string(), |t| t.to_string());
        let others: Vec<String> = self
            .replicas
            .iter()
            .filter(|(s, _)| s.as_str() != "RUNNING")
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let mut s = format!(
            "{} {} {}/{} running",
            self.name,
            self.status,
            self.running(),
            target
        );
        if !others.is_empty() {
            s.push_str(&format!(" ({})", others.join(", ")));
        }
        s
    }
}

/// One application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppView {
    pub name: String,
    pub status: String,
    pub message: String,
    pub deployments: Vec<DeploymentView>,
}

impl AppView {
    /// One progress line: `DEPLOYING | LLMServer:gptoss UPDATING 0/4 running (STARTING 4) | …`.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.status.clone()];
        parts.extend(self.deployments.iter().map(DeploymentView::summary));
        parts.join(" | ")
    }

    /// Ray's explanation of a failure: the app message plus every unhealthy deployment's.
    pub fn failure_message(&self) -> String {
        let mut parts = Vec::new();
        if !self.message.trim().is_empty() {
            parts.push(tail(&self.message, 3000));
        }
        for d in &self.deployments {
            if d.status != "HEALTHY" && !d.message.trim().is_empty() {
                parts.push(format!(
                    "deployment {} {} ({}): {}",
                    d.name,
                    d.status,
                    d.status_trigger,
                    tail(&d.message, 2000)
                ));
            }
        }
        if parts.is_empty() {
            "Ray gave no message (see the Serve controller logs)".to_string()
        } else {
            parts.join("\n")
        }
    }

    /// Deployment messages saying replicas wait to be scheduled (Ray's resource message).
    pub fn unscheduled_messages(&self) -> Vec<String> {
        self.deployments
            .iter()
            .filter(|d| d.message.contains(UNSCHEDULED_MARKER))
            .map(|d| d.message.trim().to_string())
            .collect()
    }

    /// What is not done yet, for a timeout message.
    pub fn pending(&self) -> String {
        let mut parts = vec![format!("application {}", self.status)];
        for d in &self.deployments {
            if d.status != "HEALTHY" || Some(u64::from(d.running())) != d.target_replicas {
                let mut s = d.summary();
                if !d.message.trim().is_empty() {
                    s.push_str(&format!(": {}", tail(&d.message, 1500)));
                }
                parts.push(s);
            }
        }
        if !self.message.trim().is_empty() {
            parts.push(format!("message: {}", tail(&self.message, 1500)));
        }
        parts.join("; ")
    }
}

fn str_of(v: &Value, key: &str) -> String {
    strip_ansi(v.get(key).and_then(Value::as_str).unwrap_or(""))
}

/// Is Serve running on the cluster (controller present)?
pub fn serve_running(state: &Value) -> bool {
    state
        .get("controller_info")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
}

fn applications(state: &Value) -> Option<&Map<String, Value>> {
    state.get("applications").and_then(Value::as_object)
}

/// Names of all applications.
pub fn app_names(state: &Value) -> Vec<String> {
    applications(state).map_or_else(Vec::new, |m| m.keys().cloned().collect())
}

/// The view of application `name`, if deployed.
pub fn app_view(state: &Value, name: &str) -> Option<AppView> {
    let app = applications(state)?.get(name)?;
    let mut deployments = Vec::new();
    if let Some(ds) = app.get("deployments").and_then(Value::as_object) {
        for (dname, d) in ds {
            let mut replicas = BTreeMap::new();
            for r in d
                .get("replicas")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let st = r.get("state").and_then(Value::as_str).unwrap_or("UNKNOWN");
                *replicas.entry(st.to_string()).or_insert(0) += 1;
            }
            deployments.push(DeploymentView {
                name: d
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(dname)
                    .to_string(),
                status: str_of(d, "status"),
                status_trigger: str_of(d, "status_trigger"),
                message: str_of(d, "message"),
                target_replicas: d.get("target_num_replicas").and_then(Value::as_u64),
                replicas,
            });
        }
    }
    Some(AppView {
        name: name.to_string(),
        status: str_of(app, "status"),
        message: str_of(app, "message"),
        deployments,
    })
}

/// The `deployed_app_config` of every application except `ours`, to include in a PUT so
/// the declarative PUT does not delete them. Applications deployed from Python
/// (`serve.run`, no config) cannot be kept this way: refuse.
pub fn other_app_configs(state: &Value, ours: &str) -> Result<Vec<Value>, RayError> {
    let mut out = Vec::new();
    for (name, app) in applications(state).into_iter().flatten() {
        if name == ours {
            continue;
        }
        match app.get("deployed_app_config") {
            Some(cfg @ Value::Object(_)) => out.push(cfg.clone()),
            _ => {
                return Err(RayError::Conflict(format!(
                "application '{name}' on the cluster has no deployed config (deployed from Python \
                     with serve.run?): a Serve config PUT would delete it, so nothing was changed"
            )))
            }
        }
    }
    Ok(out)
}

/// Another application already serving `route_prefix`?
pub fn route_owner(state: &Value, ours: &str, route_prefix: &str) -> Option<String> {
    applications(state)?.iter().find_map(|(name, app)| {
        let route = app
            .pointer("/deployed_app_config/route_prefix")
            .or_else(|| app.get("route_prefix"))
            .and_then(Value::as_str);
        (name != ours && route == Some(route_prefix)).then(|| name.clone())
    })
}

/// `http_options` for a PUT: the running Serve's host/port (they cannot change while Serve
/// runs), else `host`/`port` derived from the Serve URL.
pub fn http_options(state: &Value, host: &str, port: u16) -> Value {
    let running = state.get("http_options");
    let h = running.and_then(|o| o.get("host")).and_then(Value::as_str);
    let p = running.and_then(|o| o.get("port")).and_then(Value::as_u64);
    match (serve_running(state), h, p) {
        (true, Some(h), Some(p)) => json!({"host": h, "port": p}),
        _ => json!({"host": host, "port": port}),
    }
}

/// Top-level keys of a running Serve to carry into a PUT unchanged.
pub fn carried_top_level(state: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    if serve_running(state) {
        for key in ["proxy_location", "target_capacity"] {
            if let Some(v) = state.get(key).filter(|v| !v.is_null()) {
                m.insert(key.to_string(), v.clone());
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Value {
        json!({
            "controller_info": {"node_id": "n"},
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": 8000, "root_path": ""},
            "applications": {
                "hello": {"name": "hello", "route_prefix": "/hello", "status": "RUNNING", "message": "",
                          "deployed_app_config": {"name": "hello", "route_prefix": "/hello", "import_path": "hello:app"},
                          "deployments": {"Hello": {"name": "Hello", "status": "HEALTHY", "status_trigger": "CONFIG_UPDATE_COMPLETED",
                              "message": "", "target_num_replicas": 1, "replicas": [{"state": "RUNNING"}]}}},
                "gptoss": {"name": "gptoss", "status": "DEPLOYING", "message": "",
                           "deployed_app_config": {"name": "gptoss", "route_prefix": "/"},
                           "deployments": {"LLMServer:gptoss": {"name": "LLMServer:gptoss", "status": "UPDATING",
                              "status_trigger": "CONFIG_UPDATE_STARTED", "target_num_replicas": 2,
                              "message": "Deployment 'LLMServer:gptoss' in application 'gptoss' has 2 replicas that have taken more than 30s to be scheduled. Resources required for each replica: [{\"GPU\": 1.0}], total resources available: {}.",
                              "replicas": [{"state": "STARTING"}, {"state": "RUNNING"}]}}}
            },
            "target_capacity": null
        })
    }

    #[test]
    fn views_and_summaries() {
        let s = state();
        assert!(serve_running(&s));
        assert_eq!(
            app_names(&s),
            vec!["hello".to_string(), "gptoss".to_string()]
        );
        let v = app_view(&s, "gptoss").unwrap();
        assert_eq!(
            v.summary(),
            "DEPLOYING | LLMServer:gptoss UPDATING 1/2 running (STARTING 1)"
        );
        assert_eq!(v.unscheduled_messages().len(), 1);
        assert!(v.pending().contains("taken more than 30s"));
        assert!(v
            .failure_message()
            .contains("UPDATING (CONFIG_UPDATE_STARTED)"));
        assert!(app_view(&s, "nope").is_none());
    }

    #[test]
    fn keeps_other_apps() {
        let s = state();
        let others = other_app_configs(&s, "gptoss").unwrap();
        assert_eq!(
            others,
            vec![json!({"name": "hello", "route_prefix": "/hello", "import_path": "hello:app"})]
        );
        assert_eq!(route_owner(&s, "other", "/"), Some("gptoss".to_string()));
        assert_eq!(route_owner(&s, "gptoss", "/"), None);
        assert_eq!(
            http_options(&s, "127.0.0.1", 9000),
            json!({"host": "0.0.0.0", "port": 8000})
        );
        let empty = json!({"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": null});
        assert_eq!(
            http_options(&empty, "127.0.0.1", 9000),
            json!({"host": "127.0.0.1", "port": 9000})
        );
        assert!(carried_top_level(&empty).is_empty());
        assert_eq!(
            carried_top_level(&s),
            json!({"proxy_location": "EveryNode"})
                .as_object()
                .unwrap()
                .clone()
        );
        let mut imperative = state();
        imperative["applications"]["hello"]
            .as_object_mut()
            .unwrap()
            .remove("deployed_app_config");
        assert!(other_app_configs(&imperative, "gptoss").is_err());
    }
}
