//! The real backend: Ray Serve LLM + vLLM + NIXL, deployed over Ray's Serve REST API.
//!
//! * [`backend`]: the [`Backend`](crate::backend::Backend) implementation and dry runs.
//! * [`options`]: what the backend needs besides the launch request.
//! * [`preflight`]: node inventory and Ray version, layout check, placement, rendering.
//! * [`config`]: the Serve config (one application, its LLM configs) rendered as data.
//! * [`plan`]: placement of replica groups on nodes, checked before anything is deployed.
//! * [`nodes`], [`version`]: what the cluster reports (`/api/v0/nodes`, `/api/version`).
//! * [`env`]: engine environment variables, redaction of secrets.
//! * [`overrides`]: `--overrides FILE` deep-merged into every LLM config.
//! * [`dashboard`]: dashboard and Serve endpoint calls (over `pd_common::http`).
//! * [`jobs`]: the Jobs REST API (`launch-gptoss probe` runs its benchmark as a Ray job).
//! * [`serve_state`]: `GET /api/serve/applications/` as typed data.
//! * [`deploy`], [`wait`]: the deploy flow (PUT, poll, cleanup, record).
//! * [`remove`], [`status`]: `shutdown` and `status`.
//!
//! `PUT /api/serve/applications/` is declarative for the whole cluster: applications left
//! out of the body are deleted. The launcher therefore reads the current state first and
//! includes every other application's `deployed_app_config`, so it never removes someone
//! else's application; `shutdown` removes only ours (PUT without it, or DELETE when it is
//! the only one, which also stops Serve).

pub mod backend;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod env;
pub mod error;
pub mod jobs;
pub mod nodes;
pub mod options;
pub mod overrides;
pub mod plan;
pub mod preflight;
pub mod remove;
pub mod serve_state;
pub mod status;
pub mod version;
pub mod wait;
