//! The probe against the simulator: the figures of the simulated KV link, taken from the
//! simulator constants and the transfer formula the engine uses (docs/SIMULATOR.md):
//! a transfer of n blocks, B bytes, takes `tau + h·n·D_TP·[P TP ≠ D TP] + B / rate`, with `rate`
//! the link's bandwidth capped per transfer by `per_flow_bandwidth` (when set); the first
//! transfer between a P and a D replica adds the cold NIXL handshake `t_hs`. Pack moves KV
//! over NVLink unless `UCX_TLS` forces TCP; spread over the network of `--network` (default
//! of the GPU kind), as a simulated deployment would.

use pd_common::deployment::NixlBackend;
use pd_common::probe::{
    Placement, ProbeConfig, ProbeEnvironment, ProbeFigures, ProbeFile, ProbeResult, TransferTimes,
};

use super::error::ProbeError;
use super::options::SimProbe;
use crate::sim::engine::config::LinkConsts;
use crate::sim::engine::{NetworkKind, SimConstants};
use crate::sim::plan::{network_name, resolve_network, ucx_tls_forces_tcp};

/// The simulated link a configuration uses: its name and constants.
pub fn link_for(
    c: &ProbeConfig,
    sim: &SimProbe,
    consts: &SimConstants,
) -> (String, LinkConsts, Option<String>) {
    let libfabric = c.nixl_backend == NixlBackend::Libfabric;
    let tcp = !libfabric && sim.ucx_tls.as_deref().is_some_and(ucx_tls_forces_tcp);
    match c.placement {
        Placement::Pack if !tcp => ("nvlink".to_string(), consts.network.nvlink, None),
        Placement::Pack => (
            network_name(NetworkKind::Tcp).to_string(),
            *consts.network.link(NetworkKind::Tcp),
            None,
        ),
        Placement::Spread => {
            let (net, warning) =
                resolve_network(sim.network, sim.gpu, libfabric, sim.ucx_tls.as_deref());
            (
                network_name(net).to_string(),
                *consts.network.link(net),
                warning,
            )
        }
    }
}

/// Seconds to move `bytes` over `link` in one transfer (no handshake).
pub fn transfer_seconds(link: &LinkConsts, hetero: f64, bytes: f64) -> f64 {
    let rate = if link.per_flow_bandwidth > 0.0 {
        link.bandwidth.min(link.per_flow_bandwidth)
    } else {
        link.bandwidth
    };
    link.tau + hetero + bytes / rate
}

/// The simulated figures of every configuration.
pub fn run(
    configs: &[ProbeConfig],
    sim: &SimProbe,
    command: Vec<String>,
) -> Result<ProbeFile, ProbeError> {
    let consts = match &sim.sim_config {
        Some(p) => SimConstants::load(p),
        None => SimConstants::builtin(sim.gpu),
    }
    .map_err(|e| ProbeError::Sim(e.to_string()))?;
    let mut networks: Vec<String> = Vec::new();
    let mut results = Vec::new();
    for c in configs {
        let (name, link, warning) = link_for(c, sim, &consts);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        if c.placement == Placement::Spread && !networks.contains(&name) {
            networks.push(name.clone());
        }
        // P TP ≠ D TP: the engine's re-layout cost, per block per D rank.
        let hetero_per_block = if c.p_tp != c.d_tp {
            consts.pd.hetero_per_block * f64::from(c.d_tp)
        } else {
            0.0
        };
        let bytes = c.bytes_per_transfer() as f64;
        let t = transfer_seconds(&link, hetero_per_block * f64::from(c.blocks), bytes);
        let slice = (c.block_bytes / u64::from(c.d_tp / c.p_tp)) as f64;
        let lat = transfer_seconds(&link, hetero_per_block, slice);
        results.push(ProbeResult {
            link: Some(name),
            figures: ProbeFigures {
                bandwidth_gbps: Some(bytes / t / 1e9),
                latency_us: Some(lat * 1e6),
                transfer_ms: Some(TransferTimes {
                    p50: t * 1e3,
                    min: t * 1e3,
                    max: t * 1e3,
                }),
                first_transfer_ms: Some((t + consts.pd.t_hs) * 1e3),
                ..ProbeFigures::default()
            },
            error: None,
            ..ProbeResult::failed(c.clone(), "")
        });
    }
    let env = ProbeEnvironment {
        sim_gpu: Some(sim.gpu.to_string()),
        sim_network: (!networks.is_empty()).then(|| networks.join(",")),
        ..ProbeEnvironment::default()
    };
    let mut file = ProbeFile::new("sim", command, env);
    file.results = results;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pd_common::deployment::GpuKind;
    use pd_common::probe::ProbeMemory;

    fn sim(network: Option<NetworkKind>, ucx_tls: Option<&str>) -> SimProbe {
        SimProbe {
            gpu: GpuKind::H100,
            network,
            sim_config: None,
            ucx_tls: ucx_tls.map(str::to_string),
        }
    }

    fn cfg(placement: Placement, p: u32, d: u32, nixl: NixlBackend) -> ProbeConfig {
        ProbeConfig {
            id: "c1".into(),
            placement,
            nixl_backend: nixl,
            memory: ProbeMemory::Vram,
            p_tp: p,
            d_tp: d,
            block_bytes: 1 << 20,
            blocks: 1024,
            iterations: 3,
        }
    }

    #[test]
    fn figures_follow_the_constants() {
        let consts = SimConstants::builtin(GpuKind::H100).unwrap();
        let f = run(
            &[
                cfg(Placement::Pack, 1, 1, NixlBackend::Ucx),
                cfg(Placement::Spread, 1, 1, NixlBackend::Ucx),
                cfg(Placement::Spread, 1, 2, NixlBackend::Ucx),
            ],
            &sim(None, None),
            vec![],
        )
        .unwrap();
        let [pack, spread, hetero] = &f.results[..] else {
            panic!("three results")
        };
        assert_eq!(pack.link.as_deref(), Some("nvlink"));
        assert_eq!(spread.link.as_deref(), Some("efa-srd"));
        let gib = f64::from(1u32 << 30);
        let l = consts.network.efa_srd;
        let t = l.tau + gib / l.bandwidth;
        assert!((spread.figures.transfer_ms.unwrap().p50 - t * 1e3).abs() < 1e-9);
        assert!((spread.figures.bandwidth_gbps.unwrap() - gib / t / 1e9).abs() < 1e-9);
        assert!(
            spread.figures.bandwidth_gbps.unwrap() < l.bandwidth / 1e9,
            "tau costs bandwidth"
        );
        assert!(pack.figures.bandwidth_gbps.unwrap() > spread.figures.bandwidth_gbps.unwrap());
        assert!(
            (spread.figures.first_transfer_ms.unwrap() - (t + consts.pd.t_hs) * 1e3).abs() < 1e-9,
            "the first transfer pays the handshake"
        );
        assert!(hetero.figures.transfer_ms.unwrap().p50 > spread.figures.transfer_ms.unwrap().p50);
        assert!(
            (spread.figures.latency_us.unwrap()
                - (l.tau + f64::from(1u32 << 20) / l.bandwidth) * 1e6)
                .abs()
                < 1e-6
        );
        assert_eq!(f.environment.sim_network.as_deref(), Some("efa-srd"));
        assert!(f.validate().is_ok());
    }

    #[test]
    fn ucx_tls_tcp_and_networks() {
        let consts = SimConstants::builtin(GpuKind::H100).unwrap();
        let s = sim(None, Some("tcp"));
        let (name, link, _) = link_for(&cfg(Placement::Pack, 1, 1, NixlBackend::Ucx), &s, &consts);
        assert_eq!(name, "tcp");
        let t = transfer_seconds(&link, 0.0, 1e6);
        let rate = link.bandwidth.min(link.per_flow_bandwidth);
        assert!(
            (t - (link.tau + 1e6 / rate)).abs() < 1e-12,
            "per-flow cap applies"
        );
        let (name, _, _) = link_for(
            &cfg(Placement::Pack, 1, 1, NixlBackend::Libfabric),
            &s,
            &consts,
        );
        assert_eq!(name, "nvlink", "UCX_TLS does not touch libfabric");
        let (name, _, _) = link_for(
            &cfg(Placement::Spread, 1, 1, NixlBackend::Ucx),
            &sim(Some(NetworkKind::Ib), None),
            &consts,
        );
        assert_eq!(name, "ib");
        let h200 = SimProbe {
            gpu: GpuKind::H200,
            ..sim(None, None)
        };
        let f = run(
            &[cfg(Placement::Spread, 1, 1, NixlBackend::Ucx)],
            &h200,
            vec![],
        )
        .unwrap();
        assert_eq!(f.results[0].link.as_deref(), Some("ib"));
        assert_eq!(f.environment.sim_gpu.as_deref(), Some("h200"));
    }
}
