//! Test support shared by the pd-lab crates (a dev-dependency only; never shipped).
//!
//! * [`fixtures`]: where the reference data is, inside the repository.
//! * [`golden`]: golden files (compare an output with a reviewed file; `UPDATE_GOLDEN=1`).
//! * [`process`]: child-process guards, pid checks, polling.
//! * [`net`]: free ports and a minimal HTTP/1.1 client for asserting on responses.
//! * [`fake_openai`]: a scripted OpenAI-compatible server (also used by benchmarks).
//! * [`fast_openai`]: a fast scripted streaming server that checks its own timing (the
//!   client benchmark `scripts/bench-client.sh`, binary `pd-fast-openai`).
//! * [`faults`]: misbehaving-server replies for fault tests.
//! * [`fake_ray`]: a fake Ray dashboard + Serve endpoint.
//! * [`tls`]: a TLS front with a self-signed certificate made on the spot.

pub mod fake_openai;
pub mod fake_ray;
pub mod fast_openai;
pub mod faults;
pub mod fixtures;
pub mod golden;
pub mod net;
pub mod process;
pub mod tls;
