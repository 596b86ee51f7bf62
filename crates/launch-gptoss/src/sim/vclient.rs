//! A virtual-time `vllm bench serve` client for the engine.
//!
//! It sends the untimed test prompt first, then dispatches the point's prompts on vLLM's
//! arrival schedule ([`pd_common::bench::arrival_offsets`]: gamma gaps normalised so the
//! last request leaves at N / rate; everything at t = 0 for `--request-rate inf`), each
//! waiting for a slot of the client's concurrency cap in dispatch order (vLLM's semaphore):
//! `--request-rate inf --max-concurrency C` is the closed loop, a finite rate with a cap is
//! the study's `conc<C>_rr<R>` points. What the client sees of each request becomes a
//! [`RequestOutcome`] and the point's metrics come from [`pd_common::bench::compute`], the
//! same code `run-bm` uses, so a simulated number and a measured one are computed alike.

use std::collections::{HashMap, VecDeque};

use pd_common::bench::{
    arrival_offsets, compute, ChunkTimeline, Failure, FailureKind, MetricName, MetricOptions,
    PointMetrics, RequestOutcome,
};

use super::engine::{Emission, EmissionKind, Engine, SimRequest, SimTime};

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Requests per second; `f64::INFINITY` sends everything at once.
    pub rate: f64,
    /// Gamma shape of the gaps (1 = Poisson).
    pub burstiness: f64,
    /// Client concurrency cap (`--max-concurrency`), if any.
    pub max_concurrency: Option<u32>,
    /// Seed of the arrival schedule.
    pub seed: u64,
}

impl Load {
    /// `--request-rate inf --max-concurrency C`: C start at once, each finish releases
    /// the next.
    pub fn closed_loop(concurrency: u32) -> Self {
        Load {
            rate: f64::INFINITY,
            burstiness: 1.0,
            max_concurrency: Some(concurrency.max(1)),
            seed: 0,
        }
    }

    /// `--request-rate R [--max-concurrency C]` with Poisson arrivals.
    pub fn poisson(rate: f64, max_concurrency: Option<u32>, seed: u64) -> Self {
        Load {
            rate,
            burstiness: 1.0,
            max_concurrency,
            seed,
        }
    }
}

/// What the prompts share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompts {
    /// A unique random prompt per request (no prefix-cache hits).
    Unique,
    /// Every prompt is the same text (`prefix_repetition` with the whole input as one
    /// prefix: the study's decode-only mode); the prefix cache absorbs the prefill.
    SharedPrefix,
}

/// One benchmark point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    pub load: Load,
    pub num_prompts: u32,
    pub input_len: u32,
    pub output_len: u32,
    pub prompts: Prompts,
    /// Send vllm bench's untimed test prompt first and wait for it.
    pub warmup: bool,
}

/// The outcome of a point.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Per request, in dispatch order; times in seconds from the dispatch start.
    pub outcomes: Vec<RequestOutcome>,
    /// Benchmark duration (s): dispatch start to the last response.
    pub duration: f64,
    /// Whether a concurrency cap was set and the rate was finite (metric options).
    pub capped: bool,
    pub finite_rate: bool,
    /// Set when the test prompt failed: vllm bench stops before the point
    /// ("Initial test run failed") and writes no result.
    pub test_prompt_error: Option<String>,
}

impl RunOutcome {
    /// `vllm bench serve`'s metrics of the point (TTFT, TPOT, ITL, E2EL with the 99th
    /// percentile, as its defaults), computed by [`pd_common::bench::compute`].
    pub fn metrics(&self) -> PointMetrics {
        compute(&self.outcomes, self.duration, &self.metric_options())
    }

    /// The medians of the point (ms) and its throughputs, from [`RunOutcome::metrics`].
    pub fn medians(&self) -> Medians {
        Medians::of(&self.metrics())
    }

    /// The options vllm bench uses by default for this point.
    pub fn metric_options(&self) -> MetricOptions {
        MetricOptions::vllm_defaults(self.capped, self.finite_rate)
    }
}

/// The headline numbers of a point.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Medians {
    pub ttft_ms: f64,
    pub tpot_ms: f64,
    pub itl_ms: f64,
    pub e2el_ms: f64,
    pub output_throughput: f64,
    pub request_throughput: f64,
    pub completed: u64,
    pub failed: u64,
}

impl Medians {
    pub fn of(m: &PointMetrics) -> Self {
        let med = |n| m.block(n).map_or(f64::NAN, |s| s.median);
        Medians {
            ttft_ms: med(MetricName::Ttft),
            tpot_ms: med(MetricName::Tpot),
            itl_ms: med(MetricName::Itl),
            e2el_ms: med(MetricName::E2el),
            output_throughput: m.output_throughput,
            request_throughput: m.request_throughput,
            completed: m.completed,
            failed: m.failed,
        }
    }
}

/// Block hashes of a prompt shared by every request (the same text → the same chained
/// hashes); unique prompts get none (they never hit).
fn shared_hashes(input_len: u32, block: u32) -> Vec<u64> {
    (0..u64::from(input_len / block.max(1)))
        .map(|i| 0x5A17_ED00_0000_0000 ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect()
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
    block_size: u32,
}

impl<'a> VirtualClient<'a> {
    pub fn new(engine: &'a mut Engine, first_id: u64) -> Self {
        let block_size = engine.config().constants.memory.block_size;
        VirtualClient {
            engine,
            next_id: first_id,
            buf: Vec::new(),
            block_size,
        }
    }

    fn submit(&mut self, t: SimTime, spec: &RunSpec) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let block_hashes = match spec.prompts {
            Prompts::Unique => Vec::new(),
            Prompts::SharedPrefix => shared_hashes(spec.input_len, self.block_size),
        };
        self.engine.submit(
            t,
            SimRequest {
                id,
                prompt_tokens: spec.input_len,
                max_tokens: spec.output_len,
                block_hashes,
            },
        );
        id
    }

    /// Run the test prompt; `Err(message)` when it failed.
    fn test_prompt(&mut self, spec: &RunSpec) -> Option<Result<(), String>> {
        let t = self.engine.now();
        let id = self.submit(t, spec);
        loop {
            let next = self.engine.next_event_time()?;
            self.buf.clear();
            self.engine.advance(next, &mut self.buf);
            for e in &self.buf {
                if e.id == id {
                    match &e.kind {
                        EmissionKind::Finished => return Some(Ok(())),
                        EmissionKind::Failed(m) => return Some(Err(m.clone())),
                        EmissionKind::Tokens(_) => {}
                    }
                }
            }
        }
    }

    /// Run one benchmark point; returns None only if the engine stalls (a bug).
    pub fn run(&mut self, spec: &RunSpec) -> Option<RunOutcome> {
        let capped = spec.load.max_concurrency.is_some();
        let finite_rate = spec.load.rate.is_finite();
        if spec.warmup {
            if let Err(m) = self.test_prompt(spec)? {
                return Some(RunOutcome {
                    capped,
                    finite_rate,
                    test_prompt_error: Some(m),
                    ..Default::default()
                });
            }
        }
        let t0 = self.engine.now();
        let n = spec.num_prompts as usize;
        let cap = spec
            .load
            .max_concurrency
            .map_or(usize::MAX, |c| c.max(1) as usize);
        let offsets = arrival_offsets(n, spec.load.rate, spec.load.burstiness, spec.load.seed);
        let mut outcomes: Vec<RequestOutcome> = (0..n)
            .map(|i| RequestOutcome {
                index: i as u64,
                scheduled_s: offsets[i],
                arrival_s: offsets[i],
                client_prompt_len: u64::from(spec.input_len),
                ..Default::default()
            })
            .collect();
        let mut live: HashMap<u64, Live> = HashMap::with_capacity(cap.min(n));
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut arrived = 0usize;
        let mut done = 0usize;
        let mut end = t0;
        while done < n {
            let next_arrival = offsets.get(arrived).map(|o| t0 + o);
            let next_ev = self.engine.next_event_time();
            let next = match (next_ev, next_arrival) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b)?,
            };
            if next_arrival.is_some_and(|a| a <= next) {
                // the dispatcher creates the request; it waits for a slot if all are taken
                queue.push_back(arrived);
                arrived += 1;
                while live.len() < cap {
                    let Some(i) = queue.pop_front() else { break };
                    self.start(spec, i, next, t0, &mut outcomes, &mut live);
                }
                continue;
            }
            self.buf.clear();
            self.engine.advance(next, &mut self.buf);
            let mut freed = 0usize;
            for e in &self.buf {
                let Some(l) = live.get_mut(&e.id) else {
                    continue;
                };
                let o = &mut outcomes[l.index];
                let rel = e.time - t0;
                match &e.kind {
                    EmissionKind::Tokens(k) => {
                        if l.got_first {
                            o.chunks.push(e.time - l.last, *k);
                        } else {
                            o.ttft = rel - o.sent_s;
                            o.chunks.push(0.0, *k);
                            l.got_first = true;
                        }
                        l.last = e.time;
                        o.output_tokens += u64::from(*k);
                    }
                    EmissionKind::Finished => {
                        o.latency = (l.last - t0) - o.sent_s;
                        o.http_status = 200;
                        o.prompt_len = u64::from(spec.input_len);
                        live.remove(&e.id);
                        freed += 1;
                    }
                    EmissionKind::Failed(m) => {
                        // vLLM's server answers an invalid request with HTTP 400
                        o.failure = Some(Failure::new(FailureKind::Http, m.clone()));
                        o.http_status = 400;
                        o.ttft = 0.0;
                        o.latency = 0.0;
                        o.output_tokens = 0;
                        o.chunks = ChunkTimeline::default();
                        live.remove(&e.id);
                        freed += 1;
                    }
                }
                if matches!(e.kind, EmissionKind::Finished | EmissionKind::Failed(_)) {
                    done += 1;
                    end = end.max(e.time);
                }
            }
            if freed > 0 {
                let now = self.engine.now();
                while live.len() < cap {
                    let Some(i) = queue.pop_front() else { break };
                    self.start(spec, i, now, t0, &mut outcomes, &mut live);
                }
            }
        }
        Some(RunOutcome {
            outcomes,
            duration: end - t0,
            capped,
            finite_rate,
            test_prompt_error: None,
        })
    }

    fn start(
        &mut self,
        spec: &RunSpec,
        index: usize,
        now: SimTime,
        t0: SimTime,
        outcomes: &mut [RequestOutcome],
        live: &mut HashMap<u64, Live>,
    ) {
        let id = self.submit(now, spec);
        outcomes[index].sent_s = now - t0;
        live.insert(
            id,
            Live {
                index,
                last: now,
                got_first: false,
            },
        );
    }
}
