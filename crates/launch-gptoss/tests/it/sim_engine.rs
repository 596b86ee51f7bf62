//! Engine tests through the public API, with hand-computed expectations (the model of
//! docs/SIMULATOR.md), plus extrapolation sanity checks.

use launch_gptoss::sim::engine::{
    ClusterConfig, Emission, EmissionKind, Engine, ExpertParallel, NetworkKind, SimConstants,
    SimRequest,
};
use launch_gptoss::sim::vclient::{Load, Medians, Prompts, RunSpec, VirtualClient};
use pd_common::deployment::{DeploymentSpec, GpuKind, PdPlacement, Replicas};

fn consts(gpu: GpuKind) -> SimConstants {
    SimConstants::builtin(gpu).unwrap()
}

fn cluster(spec: DeploymentSpec, network: NetworkKind, seed: u64) -> ClusterConfig {
    let c = consts(spec.gpu);
    ClusterConfig {
        spec,
        gpus_per_node: 8,
        network,
        constants: c,
        max_model_len: 16000,
        seed,
    }
}

fn colloc(num: u32, tp: u32, gpu: GpuKind) -> DeploymentSpec {
    let mut s = DeploymentSpec::collocated(num, tp);
    s.gpu = gpu;
    s
}

fn pd(placement: PdPlacement, p: (u32, u32), d: (u32, u32)) -> DeploymentSpec {
    DeploymentSpec::pd(
        placement,
        Replicas { num: p.0, tp: p.1 },
        Replicas { num: d.0, tp: d.1 },
    )
}

fn req(id: u64, prompt: u32, out: u32) -> SimRequest {
    SimRequest {
        id,
        prompt_tokens: prompt,
        max_tokens: out,
        block_hashes: Vec::new(),
    }
}

fn run_spec(load: Load, n: u32, input: u32, output: u32) -> RunSpec {
    RunSpec {
        load,
        num_prompts: n,
        input_len: input,
        output_len: output,
        prompts: Prompts::Unique,
        warmup: true,
    }
}

/// Inbound latency of a request of `prompt` tokens before the engine sees it.
fn inbound(c: &SimConstants, prompt: u32) -> f64 {
    c.frontend.t_fe / 2.0 + c.frontend.t_fe_per_token * f64::from(prompt)
}

/// Outbound latency of a message (first in the proxy's queue).
fn outbound(c: &SimConstants) -> f64 {
    c.frontend.t_fe / 2.0 + c.frontend.t_chunk
}

/// Run until idle; returns every emission.
fn drain(e: &mut Engine) -> Vec<Emission> {
    let mut out = Vec::new();
    let mut guard = 0;
    while let Some(t) = e.next_event_time() {
        e.advance(t, &mut out);
        guard += 1;
        assert!(guard < 10_000_000, "engine does not settle");
    }
    out
}

fn token_times(em: &[Emission], id: u64) -> Vec<f64> {
    em.iter()
        .filter(|x| x.id == id && matches!(x.kind, EmissionKind::Tokens(_)))
        .map(|x| x.time)
        .collect()
}

#[test]
fn collocated_single_request_timing() {
    let c = consts(GpuKind::H100);
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let m = e.replica_model(0).unwrap().clone();
    e.submit(1.0, req(1, 5000, 3));
    let em = drain(&mut e);
    let t = token_times(&em, 1);
    assert_eq!(t.len(), 3);
    let prefill = m.uniform_step(1, 5000, 0, true);
    let ttft = inbound(&c, 5000) + prefill + outbound(&c);
    assert!(
        (t[0] - 1.0 - ttft).abs() < 1e-9,
        "ttft {} vs {}",
        t[0] - 1.0,
        ttft
    );
    // then decode steps at context 5000 and 5001
    assert!((t[1] - t[0] - m.uniform_step(1, 1, 5000, true)).abs() < 1e-9);
    assert!((t[2] - t[1] - m.uniform_step(1, 1, 5001, true)).abs() < 1e-9);
    assert_eq!(em.last().unwrap().kind, EmissionKind::Finished);
    // a TP2 prefill of 5000 tokens takes about 0.1 s (the P saturation of the study's runs)
    assert!(prefill > 0.07 && prefill < 0.14, "{prefill}");
    let s = e.stats();
    assert_eq!(
        (
            s.running,
            s.waiting,
            s.generation_tokens_total,
            s.finished_total
        ),
        (0, 0, 3, 1)
    );
    assert_eq!(s.kv_cache_usage, 0.0);
}

#[test]
fn pd_transfer_timing_cold_then_warm_pair() {
    let c = consts(GpuKind::H100);
    let mut e = Engine::new(cluster(
        pd(PdPlacement::Pack, (1, 4), (1, 4)),
        NetworkKind::EfaSrd,
        0,
    ))
    .unwrap();
    let mp = e.replica_model(0).unwrap().clone();
    let md = e.replica_model(1).unwrap().clone();
    e.submit(0.0, req(1, 5000, 2));
    let em = drain(&mut e);
    let bytes = 5000.0 * 73728.0;
    let nv = &c.network.nvlink;
    let expect_cold = inbound(&c, 5000)
        + mp.uniform_step(1, 5000, 0, true)
        + c.frontend.t_pd
        + c.frontend.t_fe_per_token * 5000.0
        + c.pd.t_hs
        + nv.tau
        + bytes / nv.bandwidth
        + md.uniform_step(1, 1, 4999, true)
        + outbound(&c);
    let t = token_times(&em, 1);
    assert!(
        (t[0] - expect_cold).abs() < 1e-9,
        "cold TTFT {} vs {}",
        t[0],
        expect_cold
    );
    // second request on the now warm pair: no handshake
    let t0 = e.now();
    e.submit(t0, req(2, 5000, 2));
    let em = drain(&mut e);
    let t = token_times(&em, 2);
    assert!((t[0] - t0 - (expect_cold - c.pd.t_hs)).abs() < 1e-9);
    assert_eq!(e.stats().kv_transfers_total, 2);
    assert_eq!(e.stats().kv_cache_usage, 0.0, "P and D blocks freed");
}

#[test]
fn pd_spread_efa_and_hetero_tp_penalty() {
    let c = consts(GpuKind::H100);
    // P TP2 → D TP4 over EFA-SRD: + the heterogeneous-TP penalty per block and D rank,
    // bytes at 11 GB/s
    let mut e = Engine::new(cluster(
        pd(PdPlacement::Spread, (1, 2), (1, 4)),
        NetworkKind::EfaSrd,
        0,
    ))
    .unwrap();
    let mp = e.replica_model(0).unwrap().clone();
    let md = e.replica_model(1).unwrap().clone();
    e.submit(0.0, req(1, 4000, 2));
    let em = drain(&mut e);
    let link = &c.network.efa_srd;
    let expect = inbound(&c, 4000)
        + mp.uniform_step(1, 4000, 0, true)
        + c.frontend.t_pd
        + c.frontend.t_fe_per_token * 4000.0
        + c.pd.t_hs
        + c.pd.hetero_per_block * 250.0 * 4.0
        + link.tau
        + 4000.0 * 73728.0 / link.bandwidth
        + md.uniform_step(1, 1, 3999, true)
        + outbound(&c);
    let t = token_times(&em, 1);
    assert!((t[0] - expect).abs() < 1e-9, "{} vs {expect}", t[0]);
}

#[test]
fn pd_transfers_share_the_link() {
    // TCP: two simultaneous transfers each at min(22 MB/s, 170/2 MB/s) = 22 MB/s
    let c = consts(GpuKind::H100);
    let mut cfg = cluster(pd(PdPlacement::Spread, (1, 4), (1, 4)), NetworkKind::Tcp, 0);
    cfg.constants.pd.t_hs = 0.0;
    let mut e = Engine::new(cfg).unwrap();
    e.submit(0.0, req(1, 1000, 2));
    e.submit(0.0, req(2, 1000, 2));
    let em = drain(&mut e);
    let per = 1000.0 * 73728.0 / c.network.tcp.per_flow_bandwidth; // 3.35 s
    let t1 = token_times(&em, 1)[0];
    let t2 = token_times(&em, 2)[0];
    assert!(t1 > per && t1 < per + 0.5, "{t1} vs {per}");
    assert!(t2 > per && t2 < per + 0.5, "{t2} vs {per}");
}

#[test]
fn ucx_tls_tcp_also_applies_to_pack() {
    // pd-pack normally moves KV over NVLink; with NetworkKind::Tcp (UCX_TLS=tcp) over TCP
    let ttft = |net| {
        let mut cfg = cluster(pd(PdPlacement::Pack, (1, 4), (1, 4)), net, 0);
        cfg.constants.pd.t_hs = 0.0;
        let mut e = Engine::new(cfg).unwrap();
        e.submit(0.0, req(1, 2000, 2));
        token_times(&drain(&mut e), 1)[0]
    };
    let nv = ttft(NetworkKind::EfaSrd);
    let tcp = ttft(NetworkKind::Tcp);
    let bytes = 2000.0 * 73728.0;
    assert!(tcp - nv > 0.9 * bytes / 22e6, "{tcp} vs {nv}");
    assert_eq!(
        ttft(NetworkKind::Ib),
        nv,
        "pack ignores the spread network otherwise"
    );
}

#[test]
fn tcp_transfers_slow_decode_steps() {
    // c_xfer is added to D steps per in-flight transfer: TPOT under TCP > under IB
    let run = |net| {
        let mut e = Engine::new(cluster(pd(PdPlacement::Spread, (1, 4), (1, 4)), net, 0)).unwrap();
        let mut vc = VirtualClient::new(&mut e, 1);
        let spec = run_spec(Load::closed_loop(8), 16, 2000, 50);
        vc.run(&spec).unwrap().medians()
    };
    let tcp = run(NetworkKind::Tcp);
    let ib = run(NetworkKind::Ib);
    assert!(
        tcp.tpot_ms > ib.tpot_ms,
        "{} vs {}",
        tcp.tpot_ms,
        ib.tpot_ms
    );
    assert!(tcp.ttft_ms > 10.0 * ib.ttft_ms);
}

#[test]
fn tp1_on_h100_runs_with_a_small_pool_and_impossible_configs_are_refused() {
    // GPT-OSS-120B TP1 ran on one H100 80GB in the study: it simulates, with a KV pool
    // of the order of 1e5 tokens (full-attention layers only with the hybrid manager)
    let e = Engine::new(cluster(colloc(1, 1, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let units = e.replica_kv_units(0).unwrap();
    let tokens = units * 16; // hybrid on: one unit per block of the full-attention half
    assert!((5e4..2e5).contains(&(tokens as f64)), "{tokens} tokens");
    // in PD (hybrid manager off) a TP1 H100 prefill replica runs too
    assert!(Engine::new(cluster(
        pd(PdPlacement::Pack, (1, 1), (1, 2)),
        NetworkKind::EfaSrd,
        0
    ))
    .is_ok());
    // a max_model_len the TP1 pool cannot hold is refused with vLLM's reason
    let mut cfg = cluster(
        pd(PdPlacement::Pack, (1, 1), (1, 2)),
        NetworkKind::EfaSrd,
        0,
    );
    cfg.max_model_len = 131072;
    let msg = Engine::new(cfg).unwrap_err().to_string();
    assert!(
        msg.contains("vLLM would refuse") && msg.contains("max seq len (131072)"),
        "{msg}"
    );
    // so is a GPU without room for the weights
    let mut cfg = cluster(colloc(1, 1, GpuKind::H100), NetworkKind::EfaSrd, 0);
    cfg.constants.hardware.usable_memory_bytes = 70e9;
    let msg = Engine::new(cfg).unwrap_err().to_string();
    assert!(
        msg.contains("No available memory for the cache blocks"),
        "{msg}"
    );
    // CPU has no constants
    assert!(SimConstants::builtin(GpuKind::Cpu).is_err());
}

#[test]
fn expert_parallel_decode_is_slower_at_small_batches() {
    let tpot = |ep: bool| {
        let mut e = Engine::with_expert_parallel(
            cluster(
                pd(PdPlacement::Pack, (1, 4), (1, 4)),
                NetworkKind::EfaSrd,
                0,
            ),
            ExpertParallel {
                first: false,
                decode: ep,
            },
        )
        .unwrap();
        let mut vc = VirtualClient::new(&mut e, 1);
        vc.run(&run_spec(Load::closed_loop(4), 8, 5000, 100))
            .unwrap()
            .medians()
            .tpot_ms
    };
    let (tp, ep) = (tpot(false), tpot(true));
    assert!(ep > tp * 1.02 && ep < tp * 1.4, "EP {ep} vs TP {tp}");
}

#[test]
fn too_long_requests_fail_cleanly() {
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    e.submit(0.0, req(1, 15990, 100));
    let em = drain(&mut e);
    assert_eq!(em.len(), 1);
    assert!(matches!(&em[0].kind, EmissionKind::Failed(m)
        if m.contains("maximum context length is 16000 tokens") && m.contains("16090 tokens")));
    assert_eq!(e.stats().failed_total, 1);
    // duplicate ids are refused
    e.submit(1.0, req(5, 100, 100));
    e.submit(1.0, req(5, 100, 100));
    let em = drain(&mut e);
    assert_eq!(
        em.iter()
            .filter(|x| matches!(x.kind, EmissionKind::Failed(_)))
            .count(),
        1
    );
}

#[test]
fn cancel_frees_everything_and_silences_the_request() {
    for spec in [
        colloc(2, 2, GpuKind::H100),
        pd(PdPlacement::Pack, (1, 2), (1, 2)),
    ] {
        let mut e = Engine::new(cluster(spec, NetworkKind::EfaSrd, 3)).unwrap();
        for id in 0..6 {
            e.submit(0.0, req(id, 3000, 200));
        }
        let mut out = Vec::new();
        e.advance(0.5, &mut out);
        e.cancel(0.5, 0);
        e.cancel(0.5, 3);
        e.cancel(0.5, 99); // unknown: no-op
        let rest = drain(&mut e);
        assert!(rest.iter().all(|x| x.id != 0 && x.id != 3));
        let finished = rest
            .iter()
            .filter(|x| x.kind == EmissionKind::Finished)
            .count();
        assert_eq!(finished, 4);
        let s = e.stats();
        assert_eq!((s.running, s.waiting), (0, 0));
        assert!(s.kv_cache_usage.abs() < 1e-12, "{}", s.kv_cache_usage);
    }
}

#[test]
fn preemption_under_kv_pressure_still_finishes_everything() {
    let mut cfg = cluster(colloc(1, 1, GpuKind::H200), NetworkKind::EfaSrd, 0);
    // shrink memory so the KV pool holds ≈ 8.9k tokens: 0.9·82.1 − 1.06·65.25 − 4.1 = 0.66 GB
    cfg.constants.hardware.usable_memory_bytes = 82.1e9;
    cfg.max_model_len = 8000;
    cfg.constants.memory.hybrid_kv = launch_gptoss::sim::engine::config::HybridKv::Off;
    let mut e = Engine::new(cfg).unwrap();
    for id in 0..8 {
        e.submit(0.0, req(id, 3000, 2000));
    }
    let em = drain(&mut e);
    let s = e.stats();
    assert!(s.preemptions_total > 0, "expected preemptions");
    assert_eq!(
        em.iter()
            .filter(|x| x.kind == EmissionKind::Finished)
            .count(),
        8
    );
    for id in 0..8 {
        assert_eq!(token_times(&em, id).len(), 2000, "request {id}");
    }
    assert_eq!(s.kv_cache_usage, 0.0);
}

#[test]
fn prefix_cache_hits_shorten_ttft() {
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let hashes: Vec<u64> = (1000..1312).collect();
    let mut r1 = req(1, 5000, 2);
    r1.block_hashes = hashes.clone();
    e.submit(0.0, r1);
    let em1 = drain(&mut e);
    let t0 = e.now();
    let mut r2 = req(2, 5000, 2);
    r2.block_hashes = hashes;
    e.submit(t0, r2);
    let em2 = drain(&mut e);
    let ttft1 = token_times(&em1, 1)[0];
    let ttft2 = token_times(&em2, 2)[0] - t0;
    assert!(ttft2 < ttft1 - 0.07, "{ttft2} vs {ttft1}");
    assert_eq!(e.stats().prefix_cache_hit_tokens_total, 312 * 16);
}

#[test]
fn requests_admitted_together_share_a_prefix_being_computed() {
    // vLLM publishes a prompt's blocks when it schedules them: of requests arriving
    // together with one shared prompt, the first computes it, the others hit
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let hashes: Vec<u64> = (7000..7312).collect();
    for id in 0..4 {
        let mut r = req(id, 5000, 2);
        r.block_hashes = hashes.clone();
        e.submit(0.0, r);
    }
    let em = drain(&mut e);
    assert_eq!(e.stats().prefix_cache_hit_tokens_total, 3 * 312 * 16);
    assert_eq!(
        em.iter()
            .filter(|x| x.kind == EmissionKind::Finished)
            .count(),
        4
    );
    // and the shared-prefix client mode of the virtual client gets the same hits
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let mut vc = VirtualClient::new(&mut e, 1);
    let mut spec = run_spec(Load::closed_loop(8), 16, 5000, 20);
    spec.prompts = Prompts::SharedPrefix;
    let shared = vc.run(&spec).unwrap().medians();
    drop(vc);
    // test prompt computes it; all 16 requests hit 312 blocks
    assert_eq!(e.stats().prefix_cache_hit_tokens_total, 16 * 312 * 16);
    let mut e = Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
    let mut vc = VirtualClient::new(&mut e, 1);
    spec.prompts = Prompts::Unique;
    let unique = vc.run(&spec).unwrap().medians();
    assert!(
        shared.ttft_ms < 0.5 * unique.ttft_ms,
        "{shared:?} vs {unique:?}"
    );
}

#[test]
fn same_seed_same_emissions() {
    let run = |seed| {
        let mut e = Engine::new(cluster(
            colloc(4, 2, GpuKind::H100),
            NetworkKind::EfaSrd,
            seed,
        ))
        .unwrap();
        let mut vc = VirtualClient::new(&mut e, 1);
        vc.run(&run_spec(Load::closed_loop(16), 48, 3000, 40))
            .unwrap()
    };
    let a = run(7);
    let b = run(7);
    assert_eq!(a.outcomes, b.outcomes);
    let c = run(8);
    assert_ne!(a.outcomes, c.outcomes, "routing depends on the seed");
}

fn point(spec: DeploymentSpec, c: u32, input: u32, output: u32) -> Medians {
    let mut e = Engine::new(cluster(spec, NetworkKind::EfaSrd, 0)).unwrap();
    let mut vc = VirtualClient::new(&mut e, 1);
    vc.run(&run_spec(Load::closed_loop(c), 3 * c, input, output))
        .unwrap()
        .medians()
}

#[test]
fn extrapolation_tp_scaling_is_plausible() {
    // decode gets faster with TP, prefill too; TP8 < TP4 < TP2 < TP1 (H200 can hold TP1)
    let tpot: Vec<f64> = [1, 2, 4, 8]
        .iter()
        .map(|&tp| point(colloc(1, tp, GpuKind::H200), 8, 2000, 64).tpot_ms)
        .collect();
    assert!(tpot.windows(2).all(|w| w[1] < w[0]), "{tpot:?}");
    let ttft: Vec<f64> = [1, 2, 4, 8]
        .iter()
        .map(|&tp| point(colloc(1, tp, GpuKind::H200), 1, 8000, 4).ttft_ms)
        .collect();
    assert!(ttft.windows(2).all(|w| w[1] < w[0]), "{ttft:?}");
    // H200 decodes a little faster than H100 at equal TP (overhead-dominated)
    let h100 = point(colloc(1, 4, GpuKind::H100), 8, 2000, 64).tpot_ms;
    let h200 = point(colloc(1, 4, GpuKind::H200), 8, 2000, 64).tpot_ms;
    assert!(h200 < h100 && h200 > 0.85 * h100, "{h200} vs {h100}");
}

#[test]
fn extrapolation_load_and_lengths_are_monotonic() {
    let spec = || colloc(2, 4, GpuKind::H100);
    let mut last = (0.0, 0.0);
    for c in [1, 4, 16, 64] {
        let m = point(spec(), c, 2000, 64);
        assert!(m.output_throughput > last.0, "throughput grows with C");
        assert!(m.tpot_ms >= last.1, "TPOT grows with C");
        last = (m.output_throughput, m.tpot_ms);
    }
    // longer prompts → longer TTFT; more decode replicas → lower TPOT at equal load
    let short = point(spec(), 4, 1000, 32).ttft_ms;
    let long = point(spec(), 4, 12000, 32).ttft_ms;
    let fe = consts(GpuKind::H100).frontend.t_fe * 1e3;
    assert!(long - fe > 3.0 * (short - fe), "{long} vs {short}");
    // TP1 on H100 (small KV pool) still serves 16 streams of 5000-token prompts
    let m = point(colloc(1, 1, GpuKind::H100), 16, 5000, 32);
    assert_eq!(m.completed, 48);
    let d1 = point(pd(PdPlacement::Pack, (1, 2), (1, 2)), 32, 3000, 64).tpot_ms;
    let d3 = point(pd(PdPlacement::Pack, (1, 2), (3, 2)), 32, 3000, 64).tpot_ms;
    assert!(d3 < d1, "{d3} vs {d1}");
    // TP8 PD (P TP8 → D TP8) is feasible and fast
    let m = point(pd(PdPlacement::Spread, (1, 8), (1, 8)), 8, 5000, 64);
    assert!(m.tpot_ms < 8.0, "{}", m.tpot_ms);
}

#[test]
fn request_rate_arrivals_queue_up_past_capacity() {
    let run = |rate| {
        let mut e =
            Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
        let mut vc = VirtualClient::new(&mut e, 1);
        vc.run(&run_spec(Load::poisson(rate, None, 1), 60, 5000, 50))
            .unwrap()
            .medians()
    };
    let low = run(1.0);
    let high = run(20.0); // one TP2 replica prefills ≈ 10 prompts/s
    assert_eq!(low.completed, 60);
    assert!(
        high.ttft_ms > 3.0 * low.ttft_ms,
        "{} vs {}",
        high.ttft_ms,
        low.ttft_ms
    );
    assert!(
        high.request_throughput < 12.0 && high.request_throughput > 5.0,
        "{}",
        high.request_throughput
    );
}

#[test]
fn advance_is_cheap_with_2000_streams() {
    // 2000 concurrent streams on 8×TP1 H200 replicas, in virtual time; the cost per
    // emitted token must stay small (no O(n²) per step). Debug builds are ~10× slower
    // than release; the bound is generous for a loaded 2-core machine.
    let mut e = Engine::new(cluster(colloc(8, 1, GpuKind::H200), NetworkKind::EfaSrd, 0)).unwrap();
    for id in 0..2000 {
        e.submit(0.0, req(id, 200, 100));
    }
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let mut tokens = 0u64;
    while let Some(t) = e.next_event_time() {
        out.clear();
        e.advance(t, &mut out);
        tokens += out
            .iter()
            .filter(|x| matches!(x.kind, EmissionKind::Tokens(_)))
            .count() as u64;
    }
    let el = started.elapsed().as_secs_f64();
    assert_eq!(tokens, 200_000);
    let per_token_us = el / tokens as f64 * 1e6;
    let steps = e.stats().steps_total;
    println!(
        "2000 streams: {tokens} tokens, {steps} steps in {el:.3} s = {per_token_us:.3} µs/token, {:.1} µs/step",
        el / steps as f64 * 1e6
    );
    assert!(per_token_us < 20.0, "{per_token_us:.2} µs per token");
}

#[test]
fn rate_points_follow_vllms_schedule_and_the_cap() {
    let run = |cap: Option<u32>| {
        let mut e =
            Engine::new(cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0)).unwrap();
        let mut vc = VirtualClient::new(&mut e, 1);
        vc.run(&run_spec(Load::poisson(50.0, cap, 3), 40, 2000, 20))
            .unwrap()
    };
    // no cap: vLLM's normalisation sends the last request at exactly N / rate
    let free = run(None);
    let last = free
        .outcomes
        .iter()
        .map(|o| o.arrival_s)
        .fold(0.0, f64::max);
    assert!((last - 40.0 / 50.0).abs() < 1e-9, "{last}");
    assert!(free
        .outcomes
        .iter()
        .all(|o| (o.sent_s - o.arrival_s).abs() < 1e-9));
    assert!(free.metrics().max_concurrent_requests_exact > 4);
    // a cap of 4: never more than 4 in flight, the others wait in the client (FIFO)
    let capped = run(Some(4));
    let m = capped.metrics();
    assert_eq!(m.completed, 40);
    assert!(
        m.max_concurrent_requests_exact <= 4,
        "{}",
        m.max_concurrent_requests_exact
    );
    assert!(capped.outcomes.iter().any(|o| o.client_queue_time() > 0.0));
    let sent: Vec<f64> = capped.outcomes.iter().map(|o| o.sent_s).collect();
    assert!(sent.windows(2).all(|w| w[1] >= w[0]), "dispatch order kept");
}

#[test]
fn decode_bench_skips_prefill_and_is_collocated_only() {
    use launch_gptoss::sim::engine::EngineExtras;
    let extras = EngineExtras {
        decode_bench: true,
        ..EngineExtras::default()
    };
    let c = consts(GpuKind::H100);
    let mut e = Engine::with_extras(
        cluster(colloc(1, 2, GpuKind::H100), NetworkKind::EfaSrd, 0),
        extras,
    )
    .unwrap();
    let m = e.replica_model(0).unwrap().clone();
    e.submit(0.0, req(1, 5000, 3));
    let em = drain(&mut e);
    let t = token_times(&em, 1);
    assert_eq!(t.len(), 3);
    // first token: the last prompt token on 4999 dummy-filled ones, no prefill
    let want = inbound(&c, 5000) + m.uniform_step(1, 1, 4999, true) + outbound(&c);
    assert!((t[0] - want).abs() < 1e-9, "{} vs {want}", t[0]);
    assert_eq!(e.stats().kv_cache_usage, 0.0);
    let err = Engine::with_extras(
        cluster(
            pd(PdPlacement::Pack, (1, 2), (1, 2)),
            NetworkKind::EfaSrd,
            0,
        ),
        extras,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--decode-bench") && err.contains("collocated"),
        "{err}"
    );
}
