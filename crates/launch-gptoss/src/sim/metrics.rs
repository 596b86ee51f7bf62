//! `GET /metrics`: Prometheus text with vLLM's metric names (scheduler gauges, KV-cache
//! usage, token, preemption and prefix-cache counters, and in PD vLLM's NIXL transfer
//! series), plus the simulator's own `pdlab_sim_*` series (emission lag, streams, uptime).
//! Values come from the engine's public statistics ([`EngineStats`]); run-bm captures
//! them exactly as it captures a real vLLM's.

use std::fmt::Write;

use super::engine::EngineStats;
use super::lag::LagSummary;

/// Server-side counters that are not the engine's.
#[derive(Debug, Clone, Default)]
pub struct ServerCounters {
    pub requests_total: u64,
    pub requests_rejected_total: u64,
    pub requests_cancelled_total: u64,
    pub active_streams: u64,
    pub uptime_seconds: f64,
}

/// Static facts shown as labels.
#[derive(Debug, Clone)]
pub struct MetricsInfo {
    pub model_name: String,
    pub label: String,
    pub gpu: String,
    pub version: String,
}

fn series(out: &mut String, name: &str, kind: &str, help: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name}{{{labels}}} {value}");
}

fn summary(out: &mut String, name: &str, help: &str, labels: &str, s: &LagSummary) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for (q, v) in [
        ("0.5", s.p50),
        ("0.9", s.p90),
        ("0.99", s.p99),
        ("0.999", s.p999),
        ("1", s.max),
    ] {
        let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.mean * s.count as f64);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
}

/// Render the whole page: vLLM's series, then the simulator's own.
pub fn render(
    info: &MetricsInfo,
    stats: &EngineStats,
    server: &ServerCounters,
    write_lag: &LagSummary,
    dispatch_lag: &LagSummary,
) -> String {
    let model = serde_json::Value::from(info.model_name.as_str()).to_string();
    let mut o = String::with_capacity(6144);
    render_vllm(&mut o, &model, stats);
    render_nixl(&mut o, &model, stats);
    render_sim(&mut o, &model, info, server, write_lag, dispatch_lag);
    o
}

/// vLLM's scheduler, cache and token series (one engine label set for the whole cluster:
/// gauges summed, KV usage averaged over replicas).
fn render_vllm(o: &mut String, model: &str, stats: &EngineStats) {
    let l = format!("engine=\"0\",model_name={model}");
    for (name, kind, help, value) in [
        (
            "vllm:num_requests_running",
            "gauge",
            "Number of requests in model execution batches.",
            stats.running as f64,
        ),
        (
            "vllm:num_requests_waiting",
            "gauge",
            "Number of requests waiting to be processed.",
            stats.waiting as f64,
        ),
        (
            "vllm:gpu_cache_usage_perc",
            "gauge",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            stats.kv_cache_usage,
        ),
        (
            "vllm:kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            stats.kv_cache_usage,
        ),
        (
            "vllm:prompt_tokens_total",
            "counter",
            "Number of prefill tokens processed.",
            stats.prompt_tokens_total as f64,
        ),
        (
            "vllm:generation_tokens_total",
            "counter",
            "Number of generation tokens processed.",
            stats.generation_tokens_total as f64,
        ),
        (
            "vllm:num_preemptions_total",
            "counter",
            "Cumulative number of preemptions from the engine.",
            stats.preemptions_total as f64,
        ),
        (
            // The simulator looks every prompt token up in the prefix cache once.
            "vllm:prefix_cache_queries_total",
            "counter",
            "Prefix cache queries, in terms of number of queried tokens.",
            stats.prompt_tokens_total as f64,
        ),
        (
            "vllm:prefix_cache_hits_total",
            "counter",
            "Prefix cache hits, in terms of number of cached tokens.",
            stats.prefix_cache_hit_tokens_total as f64,
        ),
    ] {
        series(o, name, kind, help, &l, value);
    }
    let _ = writeln!(
        o,
        "# HELP vllm:request_success_total Count of successfully processed requests."
    );
    let _ = writeln!(o, "# TYPE vllm:request_success_total counter");
    let _ = writeln!(
        o,
        "vllm:request_success_total{{{l},finished_reason=\"length\"}} {}",
        stats.finished_total
    );
}

/// vLLM's NIXL KV-transfer series (PD), once the first transfer completed: transfer time
/// and bytes as histograms reduced to their `_sum`, `_count` and `+Inf` bucket.
fn render_nixl(o: &mut String, model: &str, stats: &EngineStats) {
    if stats.kv_transfers_total == 0 {
        return;
    }
    let l = format!("engine=\"0\",model_name={model}");
    let n = stats.kv_transfers_total;
    for (name, help, sum) in [
        (
            "vllm:nixl_xfer_time_seconds",
            "Histogram of transfer duration for NIXL KV Cache transfers.",
            stats.kv_transfer_seconds_total,
        ),
        (
            "vllm:nixl_bytes_transferred",
            "Histogram of bytes transferred per NIXL KV Cache transfers.",
            stats.kv_transfer_bytes_total,
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} histogram");
        let _ = writeln!(o, "{name}_bucket{{{l},le=\"+Inf\"}} {n}");
        let _ = writeln!(o, "{name}_sum{{{l}}} {sum}");
        let _ = writeln!(o, "{name}_count{{{l}}} {n}");
    }
    series(
        o,
        "vllm:nixl_num_failed_transfers_total",
        "counter",
        "Number of failed NIXL KV Cache transfers.",
        &l,
        0.0,
    );
}

/// The simulator's own series (`pdlab_sim_*`).
fn render_sim(
    o: &mut String,
    model: &str,
    info: &MetricsInfo,
    server: &ServerCounters,
    write_lag: &LagSummary,
    dispatch_lag: &LagSummary,
) {
    let ml = format!("model_name={model}");
    let _ = writeln!(
        o,
        "# HELP pdlab_sim_info The simulated deployment (value is always 1)."
    );
    let _ = writeln!(o, "# TYPE pdlab_sim_info gauge");
    let _ = writeln!(
        o,
        "pdlab_sim_info{{{ml},backend=\"sim\",label={},gpu={},version={}}} 1",
        serde_json::Value::from(info.label.as_str()),
        serde_json::Value::from(info.gpu.as_str()),
        serde_json::Value::from(info.version.as_str())
    );
    for (name, kind, help, value) in [
        (
            "pdlab_sim_requests_total",
            "counter",
            "Completion requests accepted.",
            server.requests_total as f64,
        ),
        (
            "pdlab_sim_requests_rejected_total",
            "counter",
            "Completion requests answered with an error status.",
            server.requests_rejected_total as f64,
        ),
        (
            "pdlab_sim_requests_cancelled_total",
            "counter",
            "Requests whose client went away before the end.",
            server.requests_cancelled_total as f64,
        ),
        (
            "pdlab_sim_active_streams",
            "gauge",
            "Requests in flight in the server.",
            server.active_streams as f64,
        ),
        (
            "pdlab_sim_uptime_seconds",
            "gauge",
            "Seconds since the simulator started (= simulated time).",
            server.uptime_seconds,
        ),
    ] {
        series(o, name, kind, help, &ml, value);
    }
    summary(
        o,
        "pdlab_sim_emission_lag_seconds",
        "Delay between a token emission's model time and its hand-off to the HTTP connection.",
        &ml,
        write_lag,
    );
    summary(
        o,
        "pdlab_sim_dispatch_lag_seconds",
        "Delay between a token emission's model time and its dispatch by the engine thread.",
        &ml,
        dispatch_lag,
    );
}

/// Read one sample's value from a Prometheus page (first series with that name).
pub fn sample(page: &str, name: &str) -> Option<f64> {
    pd_common::prometheus::parse(page).value(name)
}

/// Read a quantile of a summary from a Prometheus page.
pub fn quantile(page: &str, name: &str, q: &str) -> Option<f64> {
    pd_common::prometheus::parse(page).value_with(name, &[("quantile", q)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_vllm_names_and_parses_back() {
        let info = MetricsInfo {
            model_name: "gptoss".into(),
            label: "4xtp2".into(),
            gpu: "h100".into(),
            version: "0.1.0".into(),
        };
        let stats = EngineStats {
            running: 3,
            waiting: 2,
            kv_cache_usage: 0.25,
            prompt_tokens_total: 100,
            generation_tokens_total: 40,
            ..Default::default()
        };
        let lag = LagSummary {
            count: 4,
            mean: 1e-4,
            p50: 1e-4,
            p90: 2e-4,
            p99: 3e-4,
            p999: 4e-4,
            max: 5e-4,
        };
        let page = render(
            &info,
            &stats,
            &ServerCounters::default(),
            &lag,
            &LagSummary::default(),
        );
        assert_eq!(sample(&page, "vllm:num_requests_running"), Some(3.0));
        assert_eq!(sample(&page, "vllm:num_requests_waiting"), Some(2.0));
        assert_eq!(sample(&page, "vllm:gpu_cache_usage_perc"), Some(0.25));
        assert_eq!(sample(&page, "vllm:kv_cache_usage_perc"), Some(0.25));
        assert_eq!(sample(&page, "vllm:prompt_tokens_total"), Some(100.0));
        assert_eq!(sample(&page, "vllm:generation_tokens_total"), Some(40.0));
        assert_eq!(
            quantile(&page, "pdlab_sim_emission_lag_seconds", "0.99"),
            Some(3e-4)
        );
        assert_eq!(
            sample(&page, "pdlab_sim_emission_lag_seconds_count"),
            Some(4.0)
        );
        assert!(page.contains("# TYPE vllm:prompt_tokens_total counter"));
        assert_eq!(
            sample(&page, "vllm:prefix_cache_queries_total"),
            Some(100.0)
        );
        // Collocated (no transfer yet): no NIXL series; every line parses.
        assert!(!page.contains("nixl"));
        assert_eq!(pd_common::prometheus::parse(&page).bad_lines, 0);
        let pd = EngineStats {
            kv_transfers_total: 4,
            kv_transfer_seconds_total: 0.5,
            kv_transfer_bytes_total: 4096.0,
            finished_total: 7,
            ..stats
        };
        let page = render(
            &info,
            &pd,
            &ServerCounters::default(),
            &lag,
            &LagSummary::default(),
        );
        let parsed = pd_common::prometheus::parse(&page);
        assert_eq!(parsed.bad_lines, 0);
        assert_eq!(parsed.value("vllm:nixl_xfer_time_seconds_count"), Some(4.0));
        assert_eq!(parsed.value("vllm:nixl_xfer_time_seconds_sum"), Some(0.5));
        assert_eq!(
            parsed.value("vllm:nixl_bytes_transferred_sum"),
            Some(4096.0)
        );
        assert_eq!(
            parsed.value_with("vllm:nixl_xfer_time_seconds_bucket", &[("le", "+Inf")]),
            Some(4.0)
        );
        assert_eq!(parsed.value("vllm:request_success_total"), Some(7.0));
    }
}
