//! `GET /metrics`: Prometheus text with vLLM's metric names, plus the simulator's own
//! `pdlab_sim_*` series (emission lag, streams, uptime).

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

/// Render the whole page.
pub fn render(
    info: &MetricsInfo,
    stats: &EngineStats,
    server: &ServerCounters,
    write_lag: &LagSummary,
    dispatch_lag: &LagSummary,
) -> String {
    let model = serde_json::Value::from(info.model_name.as_str()).to_string();
    let l = format!("engine=\"0\",model_name={model}");
    let mut o = String::with_capacity(4096);
    series(
        &mut o,
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        &l,
        stats.running as f64,
    );
    series(
        &mut o,
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        &l,
        stats.waiting as f64,
    );
    series(
        &mut o,
        "vllm:gpu_cache_usage_perc",
        "gauge",
        "GPU KV-cache usage. 1 means 100 percent usage.",
        &l,
        stats.kv_cache_usage,
    );
    series(
        &mut o,
        "vllm:kv_cache_usage_perc",
        "gauge",
        "KV-cache usage. 1 means 100 percent usage.",
        &l,
        stats.kv_cache_usage,
    );
    series(
        &mut o,
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        &l,
        stats.prompt_tokens_total as f64,
    );
    series(
        &mut o,
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        &l,
        stats.generation_tokens_total as f64,
    );
    series(
        &mut o,
        "vllm:num_preemptions_total",
        "counter",
        "Cumulative number of preemptions from the engine.",
        &l,
        stats.preemptions_total as f64,
    );
    series(
        &mut o,
        "vllm:prefix_cache_hits_total",
        "counter",
        "Prefix cache hits, in terms of number of cached tokens.",
        &l,
        stats.prefix_cache_hit_tokens_total as f64,
    );
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
    series(
        &mut o,
        "pdlab_sim_requests_total",
        "counter",
        "Completion requests accepted.",
        &ml,
        server.requests_total as f64,
    );
    series(
        &mut o,
        "pdlab_sim_requests_rejected_total",
        "counter",
        "Completion requests answered with an error status.",
        &ml,
        server.requests_rejected_total as f64,
    );
    series(
        &mut o,
        "pdlab_sim_requests_cancelled_total",
        "counter",
        "Requests whose client went away before the end.",
        &ml,
        server.requests_cancelled_total as f64,
    );
    series(
        &mut o,
        "pdlab_sim_active_streams",
        "gauge",
        "Requests in flight in the server.",
        &ml,
        server.active_streams as f64,
    );
    series(
        &mut o,
        "pdlab_sim_uptime_seconds",
        "gauge",
        "Seconds since the simulator started (= simulated time).",
        &ml,
        server.uptime_seconds,
    );
    summary(
        &mut o,
        "pdlab_sim_emission_lag_seconds",
        "Delay between a token emission's model time and its hand-off to the HTTP connection.",
        &ml,
        write_lag,
    );
    summary(
        &mut o,
        "pdlab_sim_dispatch_lag_seconds",
        "Delay between a token emission's model time and its dispatch by the engine thread.",
        &ml,
        dispatch_lag,
    );
    o
}

/// Read one sample's value from a Prometheus page (first series with that name).
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let metric = series.split('{').next()?;
        (metric == name).then(|| value.parse().ok()).flatten()
    })
}

/// Read a quantile of a summary from a Prometheus page.
pub fn quantile(page: &str, name: &str, q: &str) -> Option<f64> {
    let needle = format!("quantile=\"{q}\"");
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series.split('{').next()? == name && series.contains(&needle))
            .then(|| value.parse().ok())
            .flatten()
    })
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
    }
}
