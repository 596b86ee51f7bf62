//! The command lines that verify a planned layout: `launch-gptoss` (real cluster, or the
//! simulator's real-time server with `--backend sim`), `run-bm` over the same sweep, and
//! `launch-gptoss shutdown`. Expert parallelism has no launcher flag: it goes through an
//! `--overrides` file (`enable_expert_parallel` in the vLLM engine arguments).

use pd_common::deployment::{self, DeployMode};
use pd_common::workload::Workload;
use serde::Serialize;

use super::enumerate::Layout;
use super::evaluate::Sweep;
use crate::sim::engine::NetworkKind;
use crate::sim::plan::network_name;

/// The commands of one layout, as argument vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Commands {
    /// Deploy on the Ray cluster.
    pub launch: Vec<String>,
    /// Deploy on the simulator's real-time server instead.
    pub launch_sim: Vec<String>,
    pub run_bm: Vec<String>,
    pub shutdown: Vec<String>,
    /// Name and TOML text of the `--overrides` file expert parallelism needs.
    pub overrides: Option<(String, String)>,
}

/// The run-bm experiment name of a layout (`plan-pack_p1xtp4-d1xtp4`).
pub fn exp_name(layout: &Layout) -> String {
    format!("plan-{}", layout.name())
}

fn fmt_rate(r: f64) -> String {
    pd_common::naming::format_rate(r)
}

/// Build the commands.
pub fn commands(
    layout: &Layout,
    workload: &Workload,
    sweep: &Sweep,
    gpus_per_node: u32,
    network: NetworkKind,
) -> Commands {
    let s = |x: &str| x.to_string();
    let spec = &layout.spec;
    let mut launch = vec![s("launch-gptoss")];
    match spec.layout {
        deployment::Layout::Collocated(c) => {
            launch.extend([
                s("--mode"),
                s("collocated"),
                s("--tp"),
                c.tp.to_string(),
                s("--num-replicas"),
                c.num.to_string(),
            ]);
        }
        deployment::Layout::Pd {
            prefill: p,
            decode: d,
            ..
        } => {
            launch.extend([
                s("--mode"),
                s(spec.mode().as_str()),
                s("--p-num"),
                p.num.to_string(),
                s("--p-tp"),
                p.tp.to_string(),
                s("--d-num"),
                d.num.to_string(),
                s("--d-tp"),
                d.tp.to_string(),
                s("--use-ucx"),
            ]);
        }
    }
    if gpus_per_node != 8 {
        launch.extend([s("--gpus-per-node"), gpus_per_node.to_string()]);
    }
    let overrides = (layout.ep.first || layout.ep.decode).then(|| {
        let file = format!("{}.overrides.toml", exp_name(layout));
        let mut text = String::from(
            "# expert parallelism (tpep): the MoE experts are distributed over the TP GPUs\n",
        );
        if spec.mode() == DeployMode::Collocated || (layout.ep.first && layout.ep.decode) {
            text.push_str("[engine_kwargs]\nenable_expert_parallel = true\n");
        } else if layout.ep.first {
            text.push_str("[prefill.engine_kwargs]\nenable_expert_parallel = true\n");
        } else {
            text.push_str("[decode.engine_kwargs]\nenable_expert_parallel = true\n");
        }
        (file, text)
    });
    if let Some((file, _)) = &overrides {
        launch.extend([s("--overrides"), file.clone()]);
    }
    let mut launch_sim = launch.clone();
    launch_sim.extend([s("--backend"), s("sim"), s("--gpu"), s(spec.gpu.as_str())]);
    if spec.mode().is_pd() {
        launch_sim.extend([s("--network"), s(network_name(network))]);
    }
    let mut run_bm = vec![
        s("run-bm"),
        s("-e"),
        exp_name(layout),
        s("--itl"),
        workload.itl.to_string(),
        s("--otl"),
        workload.otl.to_string(),
        s("--mode"),
        s(workload.mode.as_str()),
    ];
    match sweep {
        Sweep::Concurrency(cs) => run_bm.extend([
            s("-t"),
            s("concurrency"),
            s("-c"),
            cs.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        ]),
        Sweep::Rate {
            rates,
            max_concurrency,
        } => {
            run_bm.extend([
                s("-t"),
                s("request-rate"),
                s("-r"),
                rates
                    .iter()
                    .map(|r| fmt_rate(*r))
                    .collect::<Vec<_>>()
                    .join(","),
            ]);
            if let Some(c) = max_concurrency {
                run_bm.extend([s("--max-concurrency"), c.to_string()]);
            }
        }
    }
    Commands {
        launch,
        launch_sim,
        run_bm,
        shutdown: vec![s("launch-gptoss"), s("shutdown")],
        overrides,
    }
}

/// A shell-quoted command line.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./,=:+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::engine::ExpertParallel;
    use pd_common::deployment::{DeploymentSpec, PdPlacement, Replicas};
    use pd_common::workload::BenchMode;

    fn wl() -> Workload {
        Workload::new(5000, 250, BenchMode::Mixed).unwrap()
    }

    #[test]
    fn commands_parse_with_the_real_clis() {
        let pd = Layout {
            spec: DeploymentSpec::pd(
                PdPlacement::Spread,
                Replicas { num: 1, tp: 4 },
                Replicas { num: 1, tp: 4 },
            ),
            ep: ExpertParallel {
                first: false,
                decode: true,
            },
        };
        let c = commands(
            &pd,
            &wl(),
            &Sweep::Concurrency(vec![4, 8]),
            8,
            NetworkKind::EfaSrd,
        );
        assert_eq!(
            shell_line(&c.launch),
            "launch-gptoss --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx \
             --overrides plan-spread_p1xtp4-d1xtpep4.overrides.toml"
        );
        assert!(shell_line(&c.launch_sim).ends_with("--backend sim --gpu h100 --network efa-srd"));
        assert_eq!(
            shell_line(&c.run_bm),
            "run-bm -e plan-spread_p1xtp4-d1xtpep4 --itl 5000 --otl 250 --mode mixed -t concurrency -c 4,8"
        );
        let (_, text) = c.overrides.unwrap();
        assert!(text.contains("[decode.engine_kwargs]\nenable_expert_parallel = true"));
        // the launcher's own parser accepts the command
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(&c.launch_sim).unwrap();
        let spec = cli.launch.spec().unwrap();
        assert_eq!(spec.label(), "p1xtp4-d1xtp4");
        assert_eq!(spec.mode(), DeployMode::PdSpread);

        let col = Layout {
            spec: DeploymentSpec::collocated(4, 2),
            ep: ExpertParallel::default(),
        };
        let c = commands(
            &col,
            &wl(),
            &Sweep::Rate {
                rates: vec![1.0, 2.5],
                max_concurrency: Some(64),
            },
            8,
            NetworkKind::EfaSrd,
        );
        assert_eq!(
            shell_line(&c.launch_sim),
            "launch-gptoss --mode collocated --tp 2 --num-replicas 4 --backend sim --gpu h100"
        );
        assert!(shell_line(&c.run_bm).ends_with("-t request-rate -r 1,2.5 --max-concurrency 64"));
        assert!(c.overrides.is_none());
        assert_eq!(shell_line(&["a b".into(), "x'y".into()]), "'a b' 'x'\\''y'");
    }
}
