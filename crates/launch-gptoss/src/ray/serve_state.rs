//! `GET /api/serve/applications/` as typed data: application and deployment states, replica
//! counts, Ray's messages, and the configs of other applications we must keep.
//!
//! Only the fields the launcher reads are typed; statuses Ray may add later parse as
//! `Unknown` (`#[serde(other)]`), missing or `null` fields take their defaults. The
//! `deployed_app_config` of each application is kept verbatim: it goes back to Ray
//! unchanged in every PUT.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{strip_ansi, tail, RayError};

/// Ray's message for replicas that wait for resources (or are still loading).
pub const UNSCHEDULED_MARKER: &str = "to be scheduled";

/// `ApplicationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppStatus {
    NotStarted,
    Deploying,
    DeployFailed,
    Running,
    Unhealthy,
    Deleting,
    #[default]
    #[serde(other)]
    Unknown,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::NotStarted => "NOT_STARTED",
            AppStatus::Deploying => "DEPLOYING",
            AppStatus::DeployFailed => "DEPLOY_FAILED",
            AppStatus::Running => "RUNNING",
            AppStatus::Unhealthy => "UNHEALTHY",
            AppStatus::Deleting => "DELETING",
            AppStatus::Unknown => "UNKNOWN",
        }
    }
}

/// `DeploymentStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    Updating,
    Healthy,
    Unhealthy,
    DeployFailed,
    Upscaling,
    Downscaling,
    #[default]
    #[serde(other)]
    Unknown,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Updating => "UPDATING",
            DeploymentStatus::Healthy => "HEALTHY",
            DeploymentStatus::Unhealthy => "UNHEALTHY",
            DeploymentStatus::DeployFailed => "DEPLOY_FAILED",
            DeploymentStatus::Upscaling => "UPSCALING",
            DeploymentStatus::Downscaling => "DOWNSCALING",
            DeploymentStatus::Unknown => "UNKNOWN",
        }
    }
}

/// `ReplicaState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicaState {
    Starting,
    Updating,
    Recovering,
    Running,
    Stopping,
    PendingMigration,
    #[default]
    #[serde(other)]
    Unknown,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Starting => "STARTING",
            ReplicaState::Updating => "UPDATING",
            ReplicaState::Recovering => "RECOVERING",
            ReplicaState::Running => "RUNNING",
            ReplicaState::Stopping => "STOPPING",
            ReplicaState::PendingMigration => "PENDING_MIGRATION",
            ReplicaState::Unknown => "UNKNOWN",
        }
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
display_as_str!(AppStatus, DeploymentStatus, ReplicaState);

/// A string field that may be missing or `null`; ANSI colours removed.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .map(|s| strip_ansi(&s))
        .unwrap_or_default())
}

/// A value that may be `null` (taken as the default).
fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object read as a list of (key, value) in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The running Serve's HTTP options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HttpOptions {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
}

/// One replica.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReplicaDetails {
    #[serde(default, deserialize_with = "or_default")]
    pub state: ReplicaState,
}

/// One deployment of an application, as Ray reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeploymentDetails {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub status: DeploymentStatus,
    #[serde(default, deserialize_with = "text")]
    pub status_trigger: String,
    #[serde(default, deserialize_with = "text")]
    pub message: String,
    #[serde(default)]
    pub target_num_replicas: Option<u64>,
    #[serde(default, deserialize_with = "or_default")]
    pub replicas: Vec<ReplicaDetails>,
}

/// The fields of a `deployed_app_config` the launcher reads, plus the whole object.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    pub route_prefix: Option<String>,
    pub import_path: Option<String>,
    pub args: Option<Value>,
    /// The object as Ray reported it (sent back unchanged).
    pub raw: Map<String, Value>,
}

impl<'de> Deserialize<'de> for AppConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Map::<String, Value>::deserialize(d)?;
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(AppConfig {
            route_prefix: s("route_prefix"),
            import_path: s("import_path"),
            args: raw.get("args").cloned(),
            raw,
        })
    }
}

/// One application, as Ray reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AppDetails {
    #[serde(default)]
    pub route_prefix: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub status: AppStatus,
    #[serde(default, deserialize_with = "text")]
    pub message: String,
    #[serde(default)]
    pub deployed_app_config: Option<AppConfig>,
    #[serde(default)]
    pub deployments: Ordered<DeploymentDetails>,
}

/// The whole Serve state of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServeState {
    #[serde(default)]
    pub controller_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub proxy_location: Option<Value>,
    #[serde(default)]
    pub http_options: Option<HttpOptions>,
    #[serde(default)]
    pub target_capacity: Option<Value>,
    #[serde(default)]
    pub applications: Ordered<AppDetails>,
}

/// One deployment, summarised for progress lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    pub name: String,
    pub status: DeploymentStatus,
    pub status_trigger: String,
    pub message: String,
    pub target_replicas: Option<u64>,
    /// Replica state → count, in state order.
    pub replicas: Vec<(ReplicaState, u32)>,
}

impl DeploymentView {
    fn from_details(key: &str, d: &DeploymentDetails) -> DeploymentView {
        let mut replicas: Vec<(ReplicaState, u32)> = Vec::new();
        for r in &d.replicas {
            match replicas.iter_mut().find(|(s, _)| *s == r.state) {
                Some((_, n)) => *n += 1,
                None => replicas.push((r.state, 1)),
            }
        }
        replicas.sort();
        DeploymentView {
            name: d.name.clone().unwrap_or_else(|| key.to_string()),
            status: d.status,
            status_trigger: d.status_trigger.clone(),
            message: d.message.clone(),
            target_replicas: d.target_num_replicas,
            replicas,
        }
    }

    pub fn running(&self) -> u32 {
        self.replicas
            .iter()
            .find(|(s, _)| *s == ReplicaState::Running)
            .map_or(0, |(_, n)| *n)
    }

    /// `Name HEALTHY 2/4 running (STARTING 2)`.
    pub fn summary(&self) -> String {
        let target = self
            .target_replicas
            .map_or_else(|| "?".to_string(), |t| t.to_string());
        let others: Vec<String> = self
            .replicas
            .iter()
            .filter(|(s, _)| *s != ReplicaState::Running)
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

    fn complete(&self) -> bool {
        self.status == DeploymentStatus::Healthy
            && Some(u64::from(self.running())) == self.target_replicas
    }
}

/// One application, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    pub name: String,
    pub status: AppStatus,
    pub message: String,
    pub deployments: Vec<DeploymentView>,
    pub config: Option<AppConfig>,
}

impl AppView {
    /// One progress line: `DEPLOYING | LLMServer:gptoss UPDATING 0/4 running (STARTING 4) | …`.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.status.to_string()];
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
            if d.status != DeploymentStatus::Healthy && !d.message.trim().is_empty() {
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
        for d in self.deployments.iter().filter(|d| !d.complete()) {
            let mut s = d.summary();
            if !d.message.trim().is_empty() {
                s.push_str(&format!(": {}", tail(&d.message, 1500)));
            }
            parts.push(s);
        }
        if !self.message.trim().is_empty() {
            parts.push(format!("message: {}", tail(&self.message, 1500)));
        }
        parts.join("; ")
    }
}

impl ServeState {
    /// Is Serve running on the cluster (controller present)?
    pub fn serve_running(&self) -> bool {
        self.controller_info.as_ref().is_some_and(|m| !m.is_empty())
    }

    /// Names of all applications.
    pub fn app_names(&self) -> Vec<String> {
        self.applications.0.iter().map(|(k, _)| k.clone()).collect()
    }

    fn app(&self, name: &str) -> Option<&AppDetails> {
        self.applications
            .0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, a)| a)
    }

    /// The view of application `name`, if deployed.
    pub fn app_view(&self, name: &str) -> Option<AppView> {
        let app = self.app(name)?;
        Some(AppView {
            name: name.to_string(),
            status: app.status,
            message: app.message.clone(),
            deployments: app
                .deployments
                .0
                .iter()
                .map(|(k, d)| DeploymentView::from_details(k, d))
                .collect(),
            config: app.deployed_app_config.clone(),
        })
    }

    /// The `deployed_app_config` of every application except `ours`, to include in a PUT so
    /// the declarative PUT does not delete them. Applications deployed from Python
    /// (`serve.run`, no config) cannot be kept this way: refuse.
    pub fn other_app_configs(&self, ours: &str) -> Result<Vec<Value>, RayError> {
        let mut out = Vec::new();
        for (name, app) in self.applications.0.iter().filter(|(n, _)| n != ours) {
            match &app.deployed_app_config {
                Some(cfg) => out.push(Value::Object(cfg.raw.clone())),
                None => {
                    return Err(RayError::Conflict(format!(
                        "application '{name}' on the cluster has no deployed config (deployed from \
                         Python with serve.run?): a Serve config PUT would delete it, so nothing \
                         was changed"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Another application already serving `route_prefix`?
    pub fn route_owner(&self, ours: &str, route_prefix: &str) -> Option<String> {
        self.applications.0.iter().find_map(|(name, app)| {
            let route = app
                .deployed_app_config
                .as_ref()
                .and_then(|c| c.route_prefix.as_deref())
                .or(app.route_prefix.as_deref());
            (name != ours && route == Some(route_prefix)).then(|| name.clone())
        })
    }

    /// `http_options` for a PUT: the running Serve's host/port (they cannot change while
    /// Serve runs), else `host`/`port` derived from the Serve URL.
    pub fn http_options(&self, host: &str, port: u16) -> Value {
        match (self.serve_running(), &self.http_options) {
            (
                true,
                Some(HttpOptions {
                    host: Some(h),
                    port: Some(p),
                }),
            ) => json!({"host": h, "port": p}),
            _ => json!({"host": host, "port": port}),
        }
    }

    /// Top-level keys of a running Serve to carry into a PUT unchanged.
    pub fn carried_top_level(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if self.serve_running() {
            for (key, v) in [
                ("proxy_location", &self.proxy_location),
                ("target_capacity", &self.target_capacity),
            ] {
                if let Some(v) = v.as_ref().filter(|v| !v.is_null()) {
                    m.insert(key.to_string(), v.clone());
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServeState {
        serde_json::from_value(json!({
            "controller_info": {"node_id": "n"},
            "proxy_location": "EveryNode",
            "http_options": {"host": "0.0.0.0", "port": 8000, "root_path": ""},
            "applications": {
                "hello": {"name": "hello", "route_prefix": "/hello", "status": "RUNNING", "message": "",
                          "deployed_app_config": {"name": "hello", "route_prefix": "/hello", "import_path": "hello:app"},
                          "deployments": {"Hello": {"name": "Hello", "status": "HEALTHY", "status_trigger": "CONFIG_UPDATE_COMPLETED",
                              "message": "", "target_num_replicas": 1, "replicas": [{"state": "RUNNING"}]}}},
                "gptoss": {"name": "gptoss", "status": "DEPLOYING", "message": null,
                           "deployed_app_config": {"name": "gptoss", "route_prefix": "/"},
                           "deployments": {"LLMServer:gptoss": {"name": "LLMServer:gptoss", "status": "UPDATING",
                              "status_trigger": "CONFIG_UPDATE_STARTED", "target_num_replicas": 2,
                              "message": "Deployment 'LLMServer:gptoss' in application 'gptoss' has 2 replicas that have taken more than 30s to be scheduled. Resources required for each replica: [{\"GPU\": 1.0}], total resources available: {}.",
                              "replicas": [{"state": "STARTING"}, {"state": "RUNNING"}, {"state": "SOMETHING_NEW"}]}}}
            },
            "target_capacity": null
        }))
        .unwrap()
    }

    #[test]
    fn views_and_summaries() {
        let s = state();
        assert!(s.serve_running());
        assert_eq!(
            s.app_names(),
            vec!["hello".to_string(), "gptoss".to_string()]
        );
        let v = s.app_view("gptoss").unwrap();
        assert_eq!(v.status, AppStatus::Deploying);
        assert_eq!(
            v.summary(),
            "DEPLOYING | LLMServer:gptoss UPDATING 1/2 running (STARTING 1, UNKNOWN 1)"
        );
        assert_eq!(v.unscheduled_messages().len(), 1);
        assert!(v.pending().contains("taken more than 30s"));
        assert!(v
            .failure_message()
            .contains("UPDATING (CONFIG_UPDATE_STARTED)"));
        assert!(s.app_view("nope").is_none());
    }

    #[test]
    fn unknown_statuses_and_missing_fields_parse() {
        let s: ServeState = serde_json::from_value(json!({
            "applications": {"a": {"status": "BRAND_NEW_STATE", "deployments": null,
                                   "deployed_app_config": null}}
        }))
        .unwrap();
        let v = s.app_view("a").unwrap();
        assert_eq!(v.status, AppStatus::Unknown);
        assert!(v.deployments.is_empty());
        assert!(!s.serve_running());
        let empty: ServeState = serde_json::from_value(json!({})).unwrap();
        assert!(empty.app_names().is_empty());
    }

    #[test]
    fn keeps_other_apps() {
        let s = state();
        let others = s.other_app_configs("gptoss").unwrap();
        assert_eq!(
            others,
            vec![json!({"name": "hello", "route_prefix": "/hello", "import_path": "hello:app"})]
        );
        assert_eq!(s.route_owner("other", "/"), Some("gptoss".to_string()));
        assert_eq!(s.route_owner("gptoss", "/"), None);
        assert_eq!(
            s.http_options("127.0.0.1", 9000),
            json!({"host": "0.0.0.0", "port": 8000})
        );
        let empty: ServeState = serde_json::from_value(
            json!({"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": null}),
        )
        .unwrap();
        assert_eq!(
            empty.http_options("127.0.0.1", 9000),
            json!({"host": "127.0.0.1", "port": 9000})
        );
        assert!(empty.carried_top_level().is_empty());
        assert_eq!(
            Value::Object(s.carried_top_level()),
            json!({"proxy_location": "EveryNode"})
        );
        let mut imperative = state();
        imperative.applications.0[0].1.deployed_app_config = None;
        assert!(imperative.other_app_configs("gptoss").is_err());
    }
}
