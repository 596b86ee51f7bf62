//! A virtual-time benchmark client for the engine: reproduces `vllm bench serve`
//! (closed loop with `--max-concurrency`, or open-loop Poisson arrivals) with its
//! untimed test prompt first, and computes its metrics exactly (TTFT, TPOT =
//! (E2E − TTFT)/(output − 1), ITL = gaps between streamed chunks, throughput =
//! tokens / benchmark duration; numpy median/percentile/std semantics).

use pd_common::result::{percentile_sorted, summarize};

use super::engine::router::Rng;
use super::engine::{Emission, EmissionKind, Engine, SimRequest, SimTime};

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// `--request-rate inf --max-concurrency C`: C start at once, each finish releases
    /// the next.
    ClosedLoop { concurrency: u32 },
    /// `--request-rate R` (Poisson, burstiness 1), no concurrency limit.
    Poisson { rate: f64, seed: u64 },
}

/// One benchmark run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    pub arrivals: Arrivals,
    pub num_prompts: u32,
    pub input_len: u32,
    pub output_len: u32,
    /// Send vllm bench's untimed test prompt first and wait for it.
    pub warmup: bool,
}

/// What the client saw of one request (times in seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRecord {
    pub start: SimTime,
    pub ttft: f64,
    pub latency: f64,
    pub itls: Vec<f64>,
    pub output_tokens: u32,
    pub prompt_tokens: u32,
    pub success: bool,
    pub error: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub records: Vec<RequestRecord>,
    /// Benchmark duration (s): first submission to last completion.
    pub duration: f64,
    /// Highest number of requests in flight.
    pub max_in_flight: u32,
}

/// Summary statistics in milliseconds (vLLM's `mean_/median_/std_/p99_` keys).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MsStats {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub p99: f64,
}

impl MsStats {
    fn of(values_s: &[f64]) -> Self {
        let ms: Vec<f64> = values_s.iter().map(|v| v * 1e3).collect();
        let s = summarize(&ms);
        let mut sorted = ms;
        sorted.sort_by(f64::total_cmp);
        MsStats {
            mean: s.mean,
            median: s.median,
            std: s.std,
            p99: percentile_sorted(&sorted, 99.0),
        }
    }
}

/// `vllm bench serve` metrics of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchMetrics {
    pub completed: u64,
    pub failed: u64,
    pub total_input: u64,
    pub total_output: u64,
    pub duration: f64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub ttft: MsStats,
    pub tpot: MsStats,
    pub itl: MsStats,
    pub e2el: MsStats,
}

impl RunOutcome {
    /// Compute the metrics as `vllm bench serve` does.
    pub fn metrics(&self) -> BenchMetrics {
        let ok: Vec<&RequestRecord> = self.records.iter().filter(|r| r.success).collect();
        let ttfts: Vec<f64> = ok.iter().map(|r| r.ttft).collect();
        let tpots: Vec<f64> = ok
            .iter()
            .filter(|r| r.output_tokens > 1)
            .map(|r| (r.latency - r.ttft) / f64::from(r.output_tokens - 1))
            .collect();
        let itls: Vec<f64> = ok.iter().flat_map(|r| r.itls.iter().copied()).collect();
        let e2el: Vec<f64> = ok.iter().map(|r| r.latency).collect();
        let total_input: u64 = ok.iter().map(|r| u64::from(r.prompt_tokens)).sum();
        let total_output: u64 = ok.iter().map(|r| u64::from(r.output_tokens)).sum();
        let d = if self.duration > 0.0 {
            self.duration
        } else {
            f64::NAN
        };
        BenchMetrics {
            completed: ok.len() as u64,
            failed: (self.records.len() - ok.len()) as u64,
            total_input,
            total_output,
            duration: self.duration,
            request_throughput: ok.len() as f64 / d,
            output_throughput: total_output as f64 / d,
            total_token_throughput: (total_input + total_output) as f64 / d,
            ttft: MsStats::of(&ttfts),
            tpot: MsStats::of(&tpots),
            itl: MsStats::of(&itls),
            e2el: MsStats::of(&e2el),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Live {
    index: usize,
    last: SimTime,
    got_first: bool,
}

/// Drives an engine in virtual time. Request ids are taken from `next_id` upwards.
pub struct VirtualClient<'a> {
    engine: &'a mut Engine,
    next_id: u64,
    buf: Vec<Emission>,
}

impl<'a> VirtualClient<'a> {
    pub fn new(engine: &'a mut Engine, first_id: u64) -> Self {
        VirtualClient {
            engine,
            next_id: first_id,
            buf: Vec::new(),
        }
    }

    fn submit(&mut self, t: SimTime, input: u32, output: u32) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.engine.submit(
            t,
            SimRequest {
                id,
                prompt_tokens: input,
                max_tokens: output,
                block_hashes: Vec::new(),
            },
        );
        id
    }

    /// Run one benchmark point; returns None only if the engine stalls (a bug).
    pub fn run(&mut self, spec: &RunSpec) -> Option<RunOutcome> {
        if spec.warmup {
            let t = self.engine.now();
            let id = self.submit(t, spec.input_len, spec.output_len);
            'warm: loop {
                let next = self.engine.next_event_time()?;
                self.buf.clear();
                self.engine.advance(next, &mut self.buf);
                for e in &self.buf {
                    if e.id == id
                        && matches!(e.kind, EmissionKind::Finished | EmissionKind::Failed(_))
                    {
                        break 'warm;
                    }
                }
            }
        }
        let t0 = self.engine.now();
        let n = spec.num_prompts as usize;
        let mut records = vec![RequestRecord::default(); n];
        let mut live: std::collections::HashMap<u64, Live> = std::collections::HashMap::new();
        let mut sent = 0usize;
        let mut done = 0usize;
        let mut in_flight = 0u32;
        let mut max_in_flight = 0u32;
        let mut end = t0;
        // Poisson arrival times (absolute)
        let mut arrivals: Vec<SimTime> = Vec::new();
        match spec.arrivals {
            Arrivals::ClosedLoop { concurrency } => {
                let c = (concurrency.max(1) as usize).min(n);
                for _ in 0..c {
                    let id = self.submit(t0, spec.input_len, spec.output_len);
                    records[sent].start = t0;
                    records[sent].prompt_tokens = spec.input_len;
                    live.insert(
                        id,
                        Live {
                            index: sent,
                            last: t0,
                            got_first: false,
                        },
                    );
                    sent += 1;
                    in_flight += 1;
                }
            }
            Arrivals::Poisson { rate, seed } => {
                let mut rng = Rng::new(seed);
                let mut t = t0;
                for i in 0..n {
                    if i > 0 && rate.is_finite() && rate > 0.0 {
                        t += -(1.0 - rng.unit()).ln() / rate;
                    }
                    arrivals.push(t);
                }
            }
        }
        max_in_flight = max_in_flight.max(in_flight);
        while done < n {
            let next_arrival = arrivals.get(sent).copied();
            let next_ev = self.engine.next_event_time();
            let next = match (next_ev, next_arrival) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b)?,
            };
            if next_arrival.is_some_and(|a| a <= next) {
                let id = self.submit(next, spec.input_len, spec.output_len);
                records[sent].start = next;
                records[sent].prompt_tokens = spec.input_len;
                live.insert(
                    id,
                    Live {
                        index: sent,
                        last: next,
                        got_first: false,
                    },
                );
                sent += 1;
                in_flight += 1;
                max_in_flight = max_in_flight.max(in_flight);
                continue;
            }
            self.buf.clear();
            self.engine.advance(next, &mut self.buf);
            let mut finished_now = 0u32;
            for e in &self.buf {
                let Some(l) = live.get_mut(&e.id) else {
                    continue;
                };
                let rec = &mut records[l.index];
                match &e.kind {
                    EmissionKind::Tokens(k) => {
                        if l.got_first {
                            rec.itls.push(e.time - l.last);
                        } else {
                            rec.ttft = e.time - rec.start;
                            l.got_first = true;
                        }
                        l.last = e.time;
                        rec.output_tokens += k;
                    }
                    EmissionKind::Finished | EmissionKind::Failed(_) => {
                        rec.latency = e.time - rec.start;
                        if let EmissionKind::Failed(m) = &e.kind {
                            rec.error = m.clone();
                        } else {
                            rec.success = true;
                        }
                        live.remove(&e.id);
                        done += 1;
                        in_flight -= 1;
                        end = end.max(e.time);
                        finished_now += 1;
                    }
                }
            }
            if let Arrivals::ClosedLoop { .. } = spec.arrivals {
                for _ in 0..finished_now {
                    if sent < n {
                        let t = self.engine.now();
                        let id = self.submit(t, spec.input_len, spec.output_len);
                        records[sent].start = t;
                        records[sent].prompt_tokens = spec.input_len;
                        live.insert(
                            id,
                            Live {
                                index: sent,
                                last: t,
                                got_first: false,
                            },
                        );
                        sent += 1;
                        in_flight += 1;
                        max_in_flight = max_in_flight.max(in_flight);
                    }
                }
            }
        }
        Some(RunOutcome {
            records,
            duration: end - t0,
            max_in_flight,
        })
    }
}
