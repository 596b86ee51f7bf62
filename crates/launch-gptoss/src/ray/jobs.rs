//! Ray's Jobs REST API on the dashboard (`/api/jobs/`): submit a shell entrypoint that runs
//! on the cluster (as a job driver on the head node), poll its status, fetch its logs, stop
//! it. Used by `launch-gptoss probe`; the shapes are those of Ray 2.60 (see
//! docs/RAY-SERVE-API.md).

use pd_common::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::dashboard::{json, Dashboard};
use super::error::RayError;

/// Path of the Jobs REST API.
pub const JOBS_PATH: &str = "/api/jobs/";

/// What to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSubmission {
    /// Shell command run by the job driver.
    pub entrypoint: String,
    /// Our id for the job (Ray's `submission_id`).
    pub submission_id: String,
    /// CPUs reserved for the driver (0: none, so a busy cluster still runs it).
    pub entrypoint_num_cpus: f64,
    /// Free-form string metadata shown by `ray job list`.
    pub metadata: Map<String, Value>,
}

/// Status of a job (`status` of `GET /api/jobs/<id>`); statuses Ray adds later are
/// `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// No further change will come.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Stopped | JobStatus::Succeeded | JobStatus::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Stopped => "STOPPED",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Unknown => "UNKNOWN",
        }
    }
}

/// The fields of `GET /api/jobs/<id>` we read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobInfo {
    pub status: JobStatus,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub driver_exit_code: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Submitted {
    #[serde(default)]
    submission_id: Option<String>,
    #[serde(default)]
    job_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Logs {
    #[serde(default)]
    logs: String,
}

/// A job id safe to put into a URL path (ours are `[A-Za-z0-9_-]`).
fn checked_id(id: &str) -> Result<&str, RayError> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(id)
    } else {
        Err(RayError::Config(format!(
            "job id '{id}' has characters other than letters, digits, '-' and '_'"
        )))
    }
}

impl Dashboard {
    /// `POST /api/jobs/` → the submission id Ray acknowledged.
    pub fn submit_job(&self, job: &JobSubmission) -> Result<String, RayError> {
        checked_id(&job.submission_id)?;
        let body = json!({
            "entrypoint": job.entrypoint,
            "submission_id": job.submission_id,
            "entrypoint_num_cpus": job.entrypoint_num_cpus,
            "metadata": job.metadata,
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| RayError::Config(e.to_string()))?;
        let r = self.call(Method::Post, JOBS_PATH, Some(&bytes))?;
        let s: Submitted = json(&self.base, JOBS_PATH, &r.body)?;
        s.submission_id
            .or(s.job_id)
            .ok_or_else(|| RayError::BadResponse {
                url: self.base.join(JOBS_PATH),
                reason: "the job submission answer has no submission_id".into(),
            })
    }

    /// `GET /api/jobs/<id>`.
    pub fn job_info(&self, id: &str) -> Result<JobInfo, RayError> {
        let path = format!("{JOBS_PATH}{}", checked_id(id)?);
        let r = self.call(Method::Get, &path, None)?;
        json(&self.base, &path, &r.body)
    }

    /// `GET /api/jobs/<id>/logs`: the driver's whole output so far.
    pub fn job_logs(&self, id: &str) -> Result<String, RayError> {
        let path = format!("{JOBS_PATH}{}/logs", checked_id(id)?);
        let r = self.call(Method::Get, &path, None)?;
        let l: Logs = json(&self.base, &path, &r.body)?;
        Ok(l.logs)
    }

    /// `POST /api/jobs/<id>/stop` (Ray answers `{"stopped": bool}`).
    pub fn stop_job(&self, id: &str) -> Result<(), RayError> {
        let path = format!("{JOBS_PATH}{}/stop", checked_id(id)?);
        self.call(Method::Post, &path, None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_ids() {
        let i: JobInfo = serde_json::from_str(
            r#"{"status": "FAILED", "message": "boom", "driver_exit_code": 1, "x": 2}"#,
        )
        .unwrap();
        assert_eq!(i.status, JobStatus::Failed);
        assert!(i.status.is_terminal());
        let i: JobInfo = serde_json::from_str(r#"{"status": "QUEUED_SOMEWHERE"}"#).unwrap();
        assert_eq!(i.status, JobStatus::Unknown);
        assert!(!i.status.is_terminal());
        assert!(checked_id("pd-lab-probe-1_2").is_ok());
        assert!(checked_id("../x").is_err());
        assert!(checked_id("").is_err());
    }
}
