//! `launch-gptoss plan`: the best deployment for a workload and latency objectives, from
//! the simulator, before renting GPUs.
//!
//! * [`enumerate`]: every layout the launcher can deploy on the cluster.
//! * [`run`]: the planning run (enumerate, simulate in parallel, rank, compare).
//! * [`evaluate`]: each layout simulated over the sweep in virtual time.
//! * [`rank`]: best point under the objectives (goodput per GPU), order, margins, frontier.
//! * [`commands`]: the launch-gptoss and run-bm command lines that verify a layout.
//! * [`compare`]: the ranking against measured runs.
//! * [`report`]: the table, the JSON form and the result directories.
//! * [`accuracy`]: the simulator's known error, stated next to the ranking.

pub mod accuracy;
pub mod commands;
pub mod compare;
pub mod enumerate;
pub mod evaluate;
pub mod rank;
pub mod report;
pub mod run;

use anyhow::{Context, Result};

use crate::cli::PlanArgs;
pub use run::{plan, sweep_of, Plan};

/// `launch-gptoss plan`.
pub fn main(args: &PlanArgs) -> Result<i32> {
    let p = run::plan(args, !args.no_progress)?;
    let dirs = if args.no_dirs {
        Vec::new()
    } else {
        report::write_dirs(&p, args.top, &args.out)?
    };
    if args.json {
        let json = report::json(&p, args.top, &dirs);
        pd_common::outln!(
            "{}",
            serde_json::to_string_pretty(&json).context("writing the plan as JSON")?
        );
    } else {
        pd_common::out!("{}", report::text(&p, args.top, &dirs));
    }
    Ok(0)
}
